/**
 * The channel norms DC-AE uses, mirroring diffusers' `normalization.get_normalization` and `RMSNorm`
 * (with `bias=True`). In NCHW the reference moves channels last before RMS/Layer norm; activations are
 * NHWC here, so every norm simply acts on the last axis.
 */
import { tf, Tensor4D } from '../../backend';
import { Module, Parameter, layerNorm, ones, rmsNorm, zeros } from '../../nn';
import { DCNormType } from './config';

/** Anything that maps [B, H, W, C] to [B, H, W, C]. */
export interface Block2d extends Module {
  forward(x: Tensor4D): Tensor4D;
}

/** A per-channel norm with a learned scale `weight` (ones) and shift `bias` (zeros), eps 1e-5 by default. */
abstract class AffineNorm2d extends Module implements Block2d {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(readonly channels: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', [channels], ones);
    this.bias = this.param('bias', [channels], zeros);
  }

  abstract forward(x: Tensor4D): Tensor4D;
}

/** diffusers' `RMSNorm(dim, eps, elementwise_affine=True, bias=True)` over channels: x / rms(x) * weight + bias. */
export class RMSNorm2d extends AffineNorm2d {
  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => rmsNorm(x, this.eps).mul(this.weight.value).add(this.bias.value) as Tensor4D);
  }
}

/**
 * `nn.LayerNorm(C, eps=1e-5)` exactly as DC-AE applies it: unlike RMSNorm, the reference does not move
 * channels last first, so on its NCHW tensor the norm acts over the WIDTH axis, with weight and bias
 * indexed by column. PyTorch accepts that only when W == C; so do we, with an error that says why.
 */
export class LayerNorm2d extends AffineNorm2d {
  forward(x: Tensor4D): Tensor4D {
    const [, , w, c] = x.shape;
    if (w !== this.channels || c !== this.channels) {
      throw new Error(
        `LayerNorm2d: the reference applies nn.LayerNorm(${this.channels}) to the last axis of its NCHW tensor (the width), ` +
          `so it needs width == channels == ${this.channels}; got NHWC [${x.shape}] (use rms_norm for a channel norm)`,
      );
    }
    return tf.tidy(() => {
      const nhcw = x.transpose([0, 1, 3, 2]); // [B, H, C, W]: the reference's last axis last
      const y = layerNorm(nhcw, this.eps).mul(this.weight.value).add(this.bias.value);
      return y.transpose([0, 1, 3, 2]) as Tensor4D;
    });
  }
}

/**
 * `nn.BatchNorm2d(C, eps=1e-5)` in inference mode: normalised with the stored running statistics
 * (what a loaded diffusers model does after `from_pretrained`, which puts it in eval mode).
 */
export class BatchNorm2d extends AffineNorm2d {
  readonly runningMean: Parameter;
  readonly runningVar: Parameter;

  constructor(channels: number, eps = 1e-5) {
    super(channels, eps);
    this.runningMean = this.buffer('running_mean', [channels], zeros);
    this.runningVar = this.buffer('running_var', [channels], ones);
    // PyTorch stores the update count (int64, unused at inference); kept so checkpoints round-trip.
    this.buffer('num_batches_tracked', [], zeros);
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const scale = this.runningVar.value.add(this.eps).rsqrt().mul(this.weight.value);
      return x.sub(this.runningMean.value).mul(scale).add(this.bias.value) as Tensor4D;
    });
  }
}

/** `get_normalization(norm_type, C)` with DC-AE's settings (eps 1e-5, affine, bias). */
export function channelNorm(type: DCNormType, channels: number): Block2d {
  switch (type) {
    case 'rms_norm':
      return new RMSNorm2d(channels);
    case 'layer_norm':
      return new LayerNorm2d(channels);
    case 'batch_norm':
      return new BatchNorm2d(channels);
  }
}

/** Applies a list of blocks in order (`nn.Sequential`: children named 0, 1, ...). */
export class Sequential2d extends Module implements Block2d {
  constructor(readonly blocks: Block2d[]) {
    super();
    blocks.forEach((b, i) => this.module(String(i), b));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => (this.blocks.length ? this.blocks.reduce<Tensor4D>((h, b) => b.forward(h), x) : x.clone()));
  }
}
