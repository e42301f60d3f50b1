/**
 * DC-AE building blocks, mirroring diffusers' `models/autoencoders/autoencoder_dc.py` (`ResBlock`,
 * `EfficientViTBlock`, `get_block`, `DCDownBlock2d`, `DCUpBlock2d`) and `GLUMBConv` from
 * `models/transformers/sana_transformer.py`, with the same parameter names. NHWC in and out.
 */
import { tf, Tensor4D } from '../../backend';
import { Conv2d, Module, activation, silu } from '../../nn';
import { SanaMultiscaleLinearAttention } from './attention';
import { DCBlockType, DCNormType } from './config';
import { Block2d, RMSNorm2d, channelNorm } from './norms';
import { channelGroupMean, pixelShuffle, pixelUnshuffle, repeatChannels, upsampleNearest } from './ops';

/**
 * diffusers' `get_activation(name)` for DC-AE configs: the shared activations, plus `mish`
 * (x * tanh(softplus(x))), which diffusers also accepts there.
 */
export function dcaeActivation(name: string): (x: tf.Tensor) => tf.Tensor {
  if (name === 'mish') {
    // softplus(x) = max(x, 0) + log(1 + exp(-|x|)): no overflow, and only ops every backend differentiates.
    return (x) => tf.tidy(() => x.mul(tf.tanh(tf.relu(x).add(tf.log(tf.exp(x.abs().neg()).add(1))))));
  }
  return activation(name);
}

/** conv3x3 -> act -> conv3x3 (no bias) -> norm, plus the input. */
export class ResBlock extends Module implements Block2d {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly norm: Block2d;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(inChannels: number, outChannels: number, normType: DCNormType, actFn: string) {
    super();
    if (inChannels !== outChannels) throw new Error(`ResBlock: the residual needs in == out channels (got ${inChannels} -> ${outChannels})`);
    this.conv1 = this.module('conv1', new Conv2d(inChannels, inChannels, 3, { padding: 1 }));
    this.conv2 = this.module('conv2', new Conv2d(inChannels, outChannels, 3, { padding: 1, bias: false }));
    this.norm = this.module('norm', channelNorm(normType, outChannels));
    this.act = dcaeActivation(actFn);
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const h = this.conv2.forward(this.act(this.conv1.forward(x)));
      return this.norm.forward(h).add(x) as Tensor4D;
    });
  }
}

/**
 * Gated MBConv: 1x1 expand to 2*hidden, SiLU, depthwise 3x3, split into (value, gate),
 * value * SiLU(gate), 1x1 project (no bias), RMSNorm, plus the input. hidden = 4 * channels.
 */
export class GLUMBConv extends Module implements Block2d {
  readonly conv_inverted: Conv2d;
  readonly conv_depth: Conv2d;
  readonly conv_point: Conv2d;
  readonly norm: RMSNorm2d;

  constructor(channels: number, expandRatio = 4) {
    super();
    const hidden = Math.floor(expandRatio * channels);
    this.conv_inverted = this.module('conv_inverted', new Conv2d(channels, hidden * 2, 1));
    this.conv_depth = this.module('conv_depth', new Conv2d(hidden * 2, hidden * 2, 3, { padding: 1, groups: hidden * 2 }));
    this.conv_point = this.module('conv_point', new Conv2d(hidden, channels, 1, { bias: false }));
    this.norm = this.module('norm', new RMSNorm2d(channels));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const h = silu(this.conv_inverted.forward(x)) as Tensor4D; // [B, H, W, 2*hidden]
      const [value, gate] = tf.split(this.conv_depth.forward(h), 2, 3); // [B, H, W, hidden] each
      const gated = value.mul(silu(gate)) as Tensor4D;
      return this.norm.forward(this.conv_point.forward(gated)).add(x) as Tensor4D;
    });
  }
}

/** Attention (with its own residual) then GLUMBConv (with its own residual). */
export class EfficientViTBlock extends Module implements Block2d {
  readonly attn: SanaMultiscaleLinearAttention;
  readonly conv_out: GLUMBConv;

  constructor(channels: number, attentionHeadDim: number, qkvMultiscales: number[], normType: DCNormType) {
    super();
    this.attn = this.module('attn', new SanaMultiscaleLinearAttention(channels, { attentionHeadDim, kernelSizes: qkvMultiscales, normType }));
    this.conv_out = this.module('conv_out', new GLUMBConv(channels));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => this.conv_out.forward(this.attn.forward(x)));
  }
}

export interface BlockSpec {
  type: DCBlockType;
  channels: number;
  attentionHeadDim: number;
  normType: DCNormType;
  actFn: string;
  qkvMultiscales: number[];
}

/** diffusers' `get_block`: one stage layer of the given type (in == out channels in DC-AE). */
export function makeBlock(s: BlockSpec): Block2d {
  switch (s.type) {
    case 'ResBlock':
      return new ResBlock(s.channels, s.channels, s.normType, s.actFn);
    case 'EfficientViTBlock':
      return new EfficientViTBlock(s.channels, s.attentionHeadDim, s.qkvMultiscales, s.normType);
  }
}

/**
 * 2x down-sampling: a stride-2 3x3 conv (or a stride-1 conv then pixel_unshuffle when
 * `pixelUnshuffle`), plus, with `shortcut`, the space-to-channel input averaged over groups of
 * 4*in/out channels.
 */
export class DCDownBlock2d extends Module implements Block2d {
  readonly conv: Conv2d;
  private readonly groupSize: number;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly pixelUnshuffleMode: boolean, readonly shortcut: boolean) {
    super();
    this.groupSize = (inChannels * 4) / outChannels;
    if (pixelUnshuffleMode && outChannels % 4) throw new Error(`DCDownBlock2d: ${outChannels} output channels must be a multiple of 4 for pixel_unshuffle`);
    const convOut = pixelUnshuffleMode ? outChannels / 4 : outChannels;
    this.conv = this.module('conv', new Conv2d(inChannels, convOut, 3, { stride: pixelUnshuffleMode ? 1 : 2, padding: 1 }));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      let y = this.conv.forward(x);
      if (this.pixelUnshuffleMode) y = pixelUnshuffle(y, 2);
      if (!this.shortcut) return y;
      return y.add(channelGroupMean(pixelUnshuffle(x, 2), this.groupSize)) as Tensor4D;
    });
  }
}

/**
 * 2x up-sampling: nearest interpolation then a 3x3 conv (or a conv to 4x channels then pixel_shuffle),
 * plus, with `shortcut`, the input with each channel repeated 4*out/in times then channel-to-space.
 */
export class DCUpBlock2d extends Module implements Block2d {
  readonly conv: Conv2d;
  private readonly repeats: number;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly interpolate: boolean, readonly shortcut: boolean) {
    super();
    this.repeats = (outChannels * 4) / inChannels;
    this.conv = this.module('conv', new Conv2d(inChannels, interpolate ? outChannels : outChannels * 4, 3, { padding: 1 }));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const y = this.interpolate ? this.conv.forward(upsampleNearest(x, 2)) : pixelShuffle(this.conv.forward(x), 2);
      if (!this.shortcut) return y;
      return y.add(pixelShuffle(repeatChannels(x, this.repeats), 2)) as Tensor4D;
    });
  }
}
