/**
 * One SANA transformer block, diffusers `SanaTransformerBlock` (`sana_transformer.py`):
 *
 *   x = x + gate_msa * attn1(LN(x) * (1 + scale_msa) + shift_msa)        ReLU linear self-attention
 *   x = x + attn2(x, caption, mask)                                       softmax cross-attention, no norm
 *   x = x + gate_mlp * ff(norm2(x) * (1 + scale_mlp) + shift_mlp)         GLUMBConv on the token grid
 *
 * with (shift, scale, gate) x 2 = scale_shift_table + the adaLN-single modulation of the timestep.
 */
import { tf, Tensor2D, Tensor3D, Tensor4D, Variable } from '../../backend';
import { Conv2d, LayerNorm, Linear, Module, Parameter, modulatedLayerNorm, normal } from '../../nn';
import { SanaCrossAttention, SanaLinearSelfAttention } from './attention';
import { SanaTransformerConfig, innerDim } from './config';
import { GLUMBConv } from './glumbconv';

/** Inputs every block receives besides the image tokens. */
export interface BlockContext {
  /** [B, L, D] caption tokens after caption_projection and caption_norm. */
  caption: Tensor3D;
  /** [B, 1, 1, L] additive cross-attention bias (0 keep, -10000 padding), or null for no mask. */
  captionBias: Tensor4D | null;
  /** [B, 6D] adaLN-single modulation. */
  modulation: Tensor2D;
  /** Token grid (after patching). */
  height: number;
  width: number;
}

export class SanaTransformerBlock extends Module {
  readonly attn1: SanaLinearSelfAttention;
  readonly attn2: SanaCrossAttention;
  readonly norm2: LayerNorm;
  readonly ff: GLUMBConv;
  readonly scale_shift_table: Parameter;
  readonly dim: number;
  private readonly normEps: number;

  constructor(config: SanaTransformerConfig) {
    super();
    const dim = innerDim(config);
    this.dim = dim;
    this.normEps = config.norm_eps;
    const crossInner = config.num_cross_attention_heads * config.cross_attention_head_dim;
    // 1. Self-attention (norm1 is a LayerNorm without parameters, applied functionally).
    this.attn1 = this.module(
      'attn1',
      new SanaLinearSelfAttention({
        queryDim: dim,
        kvDim: dim,
        heads: config.num_attention_heads,
        headDim: config.attention_head_dim,
        qkvBias: config.attention_bias,
        qkNorm: config.qk_norm,
        fusedQOut: 3 * dim,
        fusedKvOut: 3 * dim,
      }),
    );
    // 2. Cross-attention (its q/k/v always have biases in the reference).
    this.norm2 = this.module('norm2', new LayerNorm(dim, { eps: config.norm_eps, elementwiseAffine: config.norm_elementwise_affine }));
    this.attn2 = this.module(
      'attn2',
      new SanaCrossAttention({
        queryDim: dim,
        kvDim: config.cross_attention_dim,
        heads: config.num_cross_attention_heads,
        headDim: config.cross_attention_head_dim,
        qkvBias: true,
        qkNorm: config.qk_norm,
        fusedQOut: crossInner,
        fusedKvOut: 2 * crossInner,
      }),
    );
    // 3. Feed-forward.
    this.ff = this.module('ff', new GLUMBConv(dim, dim, config.mlp_ratio));
    this.scale_shift_table = this.param('scale_shift_table', [6, dim], normal(1 / Math.sqrt(dim)));
  }

  /** x: [B, N, D] image tokens (N = height * width) -> [B, N, D]. */
  forward(x: Tensor3D, ctx: BlockContext): Tensor3D {
    return tf.tidy(() => {
      const [b, n, d] = x.shape;
      // 1. Modulation: six [B, 1, D] vectors.
      const mod = this.scale_shift_table.value.expandDims(0).add(ctx.modulation.reshape([b, 6, d])); // [B, 6, D]
      const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = tf.split(mod, 6, 1);
      // 2. Self-attention.
      const normed = modulatedLayerNorm(x, scaleMsa, shiftMsa, this.normEps) as Tensor3D;
      let h = x.add(gateMsa.mul(this.attn1.forward(normed))) as Tensor3D;
      // 3. Cross-attention.
      h = h.add(this.attn2.forward(h, ctx.caption, ctx.captionBias)) as Tensor3D;
      // 4. Feed-forward on the token grid.
      // norm2 has no affine parameters in SANA's configs: the fused modulated norm applies.
      const normed2 = this.norm2.weight || this.norm2.bias ? this.norm2.forward(h).mul(scaleMlp.add(1)).add(shiftMlp) : modulatedLayerNorm(h, scaleMlp, shiftMlp, this.norm2.eps);
      const ff = this.ff.forward(normed2.reshape([b, ctx.height, ctx.width, d]) as Tensor4D).reshape([b, n, d]); // [B, N, D]
      return h.add(gateMlp.mul(ff)) as Tensor3D;
    });
  }

  /**
   * The trainable variables `forward` reads: the block's own parameters and those of adapters attached
   * to its Linear/Conv2d layers (adapters that are modules, such as LoRA branches).
   */
  trainableVariables(): Variable[] {
    const out: Variable[] = [];
    const add = (ps: Array<[string, Parameter]>) => {
      for (const [, p] of ps) if (p.trainable && p.isMaterialized) out.push(p.value);
    };
    add(this.namedParameters());
    for (const [, m] of this.namedModules()) {
      if (!(m instanceof Linear) && !(m instanceof Conv2d)) continue;
      for (const a of m.adapters) if (a instanceof Module) add(a.namedParameters());
    }
    return out;
  }
}

