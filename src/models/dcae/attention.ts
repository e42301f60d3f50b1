/**
 * Multi-scale ReLU linear attention of EfficientViT, mirroring diffusers' `SanaMultiscaleLinearAttention`,
 * `SanaMultiscaleAttentionProjection` and `SanaMultiscaleAttnProcessor2_0` (`models/attention_processor.py`)
 * with the same parameter names. NHWC in and out.
 *
 * Channel layout (the part that is easy to get wrong): q, k and v projections are concatenated along
 * channels, every multi-scale branch is applied to that concatenation and appended, and the result is
 * cut into heads of 3*head_dim CONSECUTIVE channels, each split into its own (q, k, v). So a head's
 * "query" can come from `to_k` channels; splitting by projection name would give other numbers.
 */
import { tf, Tensor, Tensor4D } from '../../backend';
import { Conv2d, Linear, Module, relu } from '../../nn';
import { Block2d, channelNorm } from './norms';
import { DCNormType } from './config';

/** Added to the attention normaliser, as the reference (`eps=1e-15`). */
const ATTENTION_EPS = 1e-15;

/**
 * A 1x1 convolution with groups, run as one batched matmul over groups instead of one convolution
 * per group (96 groups in the real model). Same parameters and layout as `Conv2d`.
 */
export class GroupedPointwiseConv2d extends Conv2d {
  constructor(inChannels: number, outChannels: number, groups: number) {
    super(inChannels, outChannels, 1, { groups, bias: false });
  }

  /** x: [B, H, W, in] -> [B, H, W, out]. */
  override forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const [b, h, w] = x.shape;
      const g = this.groups;
      const ci = this.inChannels / g;
      const co = this.outChannels / g;
      const xg = x.reshape([b * h * w, g, ci]).transpose([1, 0, 2]); // [G, N, ci]
      // TF layout [1, 1, ci, G*co]: output channel g*co + o of group g.
      const wg = this.weight.value.reshape([ci, g, co]).transpose([1, 0, 2]); // [G, ci, co]
      return tf.matMul(xg, wg).transpose([1, 0, 2]).reshape([b, h, w, this.outChannels]) as Tensor4D;
    });
  }
}

/** `SanaMultiscaleAttentionProjection`: depthwise k x k, then grouped 1x1 with one group per (q|k|v) head. */
export class MultiscaleProjection extends Module {
  readonly proj_in: Conv2d;
  readonly proj_out: GroupedPointwiseConv2d;

  constructor(channels: number, heads: number, kernelSize: number) {
    super();
    this.proj_in = this.module('proj_in', new Conv2d(channels, channels, kernelSize, { padding: Math.floor(kernelSize / 2), groups: channels, bias: false }));
    this.proj_out = this.module('proj_out', new GroupedPointwiseConv2d(channels, channels, 3 * heads));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => this.proj_out.forward(this.proj_in.forward(x)));
  }
}

export interface MultiscaleAttentionOptions {
  attentionHeadDim: number;
  kernelSizes: number[];
  normType: DCNormType;
  /** Heads = floor(channels / head_dim * mult), as the reference (mult is 1 in DC-AE). */
  mult?: number;
}

/** `SanaMultiscaleLinearAttention` with `residual_connection=True` (as in `EfficientViTBlock`). */
export class SanaMultiscaleLinearAttention extends Module implements Block2d {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_qkv_multiscale: MultiscaleProjection[];
  readonly to_out: Linear;
  readonly norm_out: Block2d;
  readonly headDim: number;
  readonly heads: number;

  constructor(readonly channels: number, opts: MultiscaleAttentionOptions) {
    super();
    this.headDim = opts.attentionHeadDim;
    this.heads = Math.floor((Math.floor(channels / this.headDim)) * (opts.mult ?? 1));
    if (this.heads < 1) throw new Error(`SanaMultiscaleLinearAttention: ${channels} channels hold no head of ${this.headDim}`);
    const inner = this.heads * this.headDim;
    // 1. q, k, v projections (1x1, no bias).
    this.to_q = this.module('to_q', new Linear(channels, inner, { bias: false }));
    this.to_k = this.module('to_k', new Linear(channels, inner, { bias: false }));
    this.to_v = this.module('to_v', new Linear(channels, inner, { bias: false }));
    // 2. one aggregation branch per kernel size, over the concatenated q|k|v.
    this.to_qkv_multiscale = this.moduleList('to_qkv_multiscale', opts.kernelSizes.map((k) => new MultiscaleProjection(3 * inner, this.heads, k)));
    // 3. output projection of all branches, norm (the residual is added after it).
    this.to_out = this.module('to_out', new Linear(inner * (1 + opts.kernelSizes.length), channels, { bias: false }));
    this.norm_out = this.module('norm_out', channelNorm(opts.normType, channels));
  }

  /** x: [B, H, W, C] -> [B, H, W, C]. */
  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const [b, h, w] = x.shape;
      const n = h * w;
      const d = this.headDim;
      // 1. q|k|v projections, concatenated along channels.
      const qkv = tf.concat([this.to_q.forward(x), this.to_k.forward(x), this.to_v.forward(x)], 3) as Tensor4D; // [B, H, W, 3*inner]
      // 2. multi-scale branches appended along channels.
      const all = tf.concat([qkv, ...this.to_qkv_multiscale.map((m) => m.forward(qkv))], 3); // [B, H, W, G*3d]
      // 3. heads of 3d consecutive channels, each split into q, k, v.
      const groups = all.shape[3] / (3 * d);
      const heads = all.reshape([b, n, groups, 3 * d]).transpose([0, 2, 1, 3]); // [B, G, N, 3d]
      const [q0, k0, v] = tf.split(heads, 3, 3); // [B, G, N, d] each
      const q = relu(q0);
      const k = relu(k0);
      // 4. ReLU linear attention on large maps, the "quadratic" ReLU-kernel form on small ones.
      const out = n > d ? linearAttention(q, k, v) : quadraticAttention(q, k, v); // [B, G, N, d]
      const merged = out.transpose([0, 2, 1, 3]).reshape([b, h, w, groups * d]); // [B, H, W, G*d]
      // 5. projection, norm, residual.
      const y = this.norm_out.forward(this.to_out.forward(merged) as Tensor4D);
      return y.add(x) as Tensor4D;
    });
  }
}

/**
 * out_n = (q_n . sum_m k_m v_m^T) / (q_n . sum_m k_m + eps): the reference pads v with a row of ones
 * and divides by that row, which is this denominator. q, k, v: [B, G, N, d].
 */
export function linearAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return tf.tidy(() => {
    const kv = tf.matMul(k, v, true, false); // [B, G, d, d]
    const num = tf.matMul(q, kv); // [B, G, N, d]
    const kSum = k.sum(2, true); // [B, G, 1, d]
    const den = q.mul(kSum).sum(3, true); // [B, G, N, 1]
    return num.div(den.add(ATTENTION_EPS));
  });
}

/** scores[n, m] = q_n . k_m normalised by their sum over keys m (no softmax); out = scores @ v. */
export function quadraticAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return tf.tidy(() => {
    const scores = tf.matMul(q, k, false, true); // [B, G, Nq, Nk]
    const normed = scores.div(scores.sum(3, true).add(ATTENTION_EPS));
    return tf.matMul(normed, v); // [B, G, Nq, d]
  });
}
