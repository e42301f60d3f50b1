/**
 * SANA's Mix-FFN, diffusers `GLUMBConv` (`sana_transformer.py`) as the transformer block uses it (no
 * norm, no residual): 1x1 conv to 2x hidden + SiLU, 3x3 depthwise conv, gated split
 * (first half * SiLU(second half)), 1x1 conv back without bias. NHWC here; the reference runs NCHW,
 * which only changes where the channel axis is.
 */
import { tf, Tensor4D } from '../../backend';
import { Conv2d, Module, silu } from '../../nn';

export class GLUMBConv extends Module {
  readonly conv_inverted: Conv2d;
  readonly conv_depth: Conv2d;
  readonly conv_point: Conv2d;
  readonly hiddenChannels: number;

  /** hidden = int(mlpRatio * inChannels), as Python's int() truncates. */
  constructor(inChannels: number, outChannels: number, mlpRatio: number) {
    super();
    const hidden = Math.trunc(mlpRatio * inChannels);
    this.hiddenChannels = hidden;
    this.conv_inverted = this.module('conv_inverted', new Conv2d(inChannels, hidden * 2, 1));
    this.conv_depth = this.module('conv_depth', new Conv2d(hidden * 2, hidden * 2, 3, { padding: 1, groups: hidden * 2 }));
    this.conv_point = this.module('conv_point', new Conv2d(hidden, outChannels, 1, { bias: false }));
  }

  /** x: [B, H, W, in] -> [B, H, W, out]. */
  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const h = silu(this.conv_inverted.forward(x)) as Tensor4D; // [B, H, W, 2*hidden]
      const d = this.conv_depth.forward(h); // [B, H, W, 2*hidden]
      const [value, gate] = tf.split(d, 2, 3);
      return this.conv_point.forward(value.mul(silu(gate)) as Tensor4D); // [B, H, W, out]
    });
  }
}
