/**
 * The two attentions of a SANA block, mirroring diffusers `models/attention_processor.py`
 * (`Attention` with `SanaLinearAttnProcessor2_0` for self-attention, and `SanaAttnProcessor2_0` from
 * `sana_transformer.py` for cross-attention). Parameter names are diffusers': `to_q`, `to_k`, `to_v`,
 * `to_out.0`, and with qk-norm `norm_q`, `norm_k`. Projections that read the same input run as one GEMM
 * over their concatenated weights (`fusedLinears`); a layer with adapters (LoRA) attached is called
 * through its own `forward` instead, so the adapters take part.
 *
 * Tokens are [B, N, C] with head h owning channels [h*d, (h+1)*d), as in the reference.
 */
import { tf, biasAdd, positiveMask, Tensor, Tensor3D, Tensor4D } from '../../backend';
import { Linear, Module, RMSNorm, customGradient } from '../../nn';
import { fusedSliceLinear, xavierLinear } from './init';

/** eps of diffusers `Attention`'s qk RMSNorms. */
const QK_NORM_EPS = 1e-5;
/** Added to the linear attention's normaliser (the reference's constant; keeps 0/0 finite). */
const LINEAR_ATTN_EPS = 1e-15;

/** [B, N, H*d] -> [B, H, N, d]. */
export function splitHeads(x: Tensor, heads: number): Tensor4D {
  return tf.tidy(() => {
    const [b, n, c] = x.shape;
    return x.reshape([b, n, heads, c / heads]).transpose([0, 2, 1, 3]) as Tensor4D;
  });
}

/** [B, H, N, d] -> [B, N, H*d]. */
export function mergeHeads(x: Tensor4D): Tensor3D {
  return tf.tidy(() => {
    const [b, h, n, d] = x.shape;
    return x.transpose([0, 2, 1, 3]).reshape([b, n, h * d]) as Tensor3D;
  });
}

/**
 * Several Linear layers applied to the same input as one GEMM, x [..., in] @ [W_1 | W_2 | ...] plus the
 * concatenated biases, split back into one output per layer: one large product instead of several
 * narrow ones, in the forward and in both backward products. Layers with adapters (LoRA), or a mix of
 * layers with and without bias, run one by one so every term takes part. So do all layers when no
 * gradient is being recorded (sampling): there the weights cannot change between calls, and
 * concatenating them on every call would copy all q/k/v weights once per denoising step (about 2 GB
 * for Sana-1.6B) for products that run as fast separately.
 * @returns one tensor [..., out_i] per layer
 */
export function fusedLinears(layers: Linear[], x: Tensor): Tensor[] {
  return tf.tidy(() => {
    const withBias = layers.filter((l) => l.bias !== null).length;
    const recording = tf.engine().isTapeOn();
    if (!recording || layers.length === 1 || layers.some((l) => l.adapters.length > 0) || (withBias > 0 && withBias < layers.length)) {
      return layers.map((l) => l.forward(x));
    }
    const inFeatures = layers[0].inFeatures;
    const lead = x.shape.slice(0, -1);
    const weight = tf.concat(layers.map((l) => l.weight.value), 1); // [in, sum of out]
    let y = tf.matMul(x.reshape([-1, inFeatures]), weight); // [rows, sum of out]
    if (withBias) y = biasAdd(y, tf.concat(layers.map((l) => l.bias!.value)));
    return tf.split(y, layers.map((l) => l.outFeatures), 1).map((t, i) => t.reshape([...lead, layers[i].outFeatures]));
  });
}

/**
 * ReLU linear attention (SANA's "linear DiT" self-attention), O(N) in the number of tokens:
 *
 *   out_n = sum_m (relu(q_n) . relu(k_m)) v_m / (sum_m relu(q_n) . relu(k_m) + 1e-15)
 *
 * computed per head as relu(Q) (relu(K)^T V) and relu(Q) (relu(K)^T 1): two [d x N] x [N x d] products
 * and two [N x d] x [d x d] products, never an N x N matrix. No softmax, no 1/sqrt(d), no mask.
 * Equal to the reference's padded-V formulation ((V;1) relu(K)^T) relu(Q) row by row.
 * @param q, k, v [B, N, H*d] float32
 * @returns [B, N, H*d]
 */
export function reluLinearAttention(q: Tensor, k: Tensor, v: Tensor, heads: number): Tensor3D {
  return linearAttentionOp(heads)(q, k, v) as Tensor3D;
}

const linearAttentionOps = new Map<number, (...xs: Tensor[]) => Tensor>();

/**
 * The attention above with its backward pass written out (half the kernels of the chain rule through
 * it). With r = 1 / (relu(Q) s + eps), s = sum_m relu(k_m), KV = relu(K)^T V and out = relu(Q) KV r:
 *   dNum = dOut r,  dDen = -sum_d(dOut * out) r
 *   dQ = (dNum KV^T + dDen s) * [q > 0]
 *   dKV = relu(Q)^T dNum,  ds = dDen^T relu(Q)
 *   dK = (V dKV^T + 1 ds) * [k > 0],  dV = relu(K) dKV
 */
function linearAttentionOp(heads: number): (...xs: Tensor[]) => Tensor {
  let op = linearAttentionOps.get(heads);
  if (op) return op;
  op = customGradient(3, ([q, k, v], save) => {
    const qh = tf.relu(splitHeads(q, heads)); // [B, H, N, d]
    const kh = tf.relu(splitHeads(k, heads));
    const vh = splitHeads(v, heads);
    const kv = tf.matMul(kh, vh, true, false); // [B, H, d, d]
    const kSum = kh.sum(2, true); // [B, H, 1, d]
    const r = tf.reciprocal(tf.matMul(qh, kSum, false, true).add(LINEAR_ATTN_EPS)); // [B, H, N, 1]
    const outH = tf.matMul(qh, kv).mul(r); // [B, H, N, d]
    save([qh, kh, vh, kv, kSum, r, outH]);
    return {
      value: mergeHeads(outH as Tensor4D),
      gradFunc: (dy, [qs, ks, vs, kvs, kSums, rs, outs]) =>
        tf.tidy(() => {
          const dOut = splitHeads(dy, heads); // [B, H, N, d]
          const dNum = dOut.mul(rs);
          const dDen = dOut.mul(outs).sum(3, true).mul(rs).neg(); // [B, H, N, 1]
          const ones = tf.onesLike(dDen);
          const dQ = tf.matMul(dNum, kvs, false, true).add(tf.matMul(dDen, kSums)).mul(positiveMask(qs));
          const dKv = tf.matMul(qs, dNum, true, false); // [B, H, d, d]
          const dKSum = tf.matMul(dDen, qs, true, false); // [B, H, 1, d]
          const dK = tf.matMul(vs, dKv, false, true).add(tf.matMul(ones, dKSum)).mul(positiveMask(ks));
          const dV = tf.matMul(ks, dKv);
          return [mergeHeads(dQ as Tensor4D), mergeHeads(dK as Tensor4D), mergeHeads(dV as Tensor4D)];
        }),
    };
  });
  linearAttentionOps.set(heads, op);
  return op;
}

/**
 * Multi-head softmax attention, softmax(Q K^T / sqrt(d) + bias) V (PyTorch's
 * `scaled_dot_product_attention` with an additive mask).
 * @param q [B, N, H*d]; k, v [B, L, H*d]
 * @param bias additive logits bias broadcastable to [B, H, N, L] (e.g. [B, 1, 1, L]), or null
 * @returns [B, N, H*d]
 */
export function softmaxAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, bias: Tensor | null): Tensor3D {
  return tf.tidy(() => {
    const d = q.shape[2]! / heads;
    const qh = splitHeads(q, heads); // [B, H, N, d]
    // The 1/sqrt(d) scale goes on the keys: L caption tokens against N image tokens, a smaller tensor.
    const kh = splitHeads(k.mul(1 / Math.sqrt(d)), heads); // [B, H, L, d]
    const vh = splitHeads(v, heads); // [B, H, L, d]
    let logits = tf.matMul(qh, kh, false, true); // [B, H, N, L]
    if (bias) logits = logits.add(bias);
    return mergeHeads(tf.matMul(tf.softmax(logits), vh) as Tensor4D);
  });
}

export interface AttentionOptions {
  /** Query width (and output width). */
  queryDim: number;
  /** Key/value source width. */
  kvDim: number;
  heads: number;
  headDim: number;
  /** Bias on to_q, to_k, to_v. */
  qkvBias: boolean;
  qkNorm: 'rms_norm_across_heads' | null;
  /** Outputs of the fused SANA projection this q/k/v slice belongs to (for the from-scratch init). */
  fusedQOut: number;
  fusedKvOut: number;
}

/** Projections and optional qk-norm shared by both attentions (diffusers `Attention`'s parameters). */
abstract class AttentionBase extends Module {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  /** `to_out.0` (diffusers keeps a Dropout at `to_out.1`, which has no parameters). */
  readonly to_out: Linear;
  readonly norm_q: RMSNorm | null;
  readonly norm_k: RMSNorm | null;
  readonly heads: number;

  constructor(o: AttentionOptions) {
    super();
    const inner = o.heads * o.headDim;
    this.heads = o.heads;
    this.to_q = this.module('to_q', new Linear(o.queryDim, inner, fusedSliceLinear(o.queryDim, o.fusedQOut, o.qkvBias)));
    this.to_k = this.module('to_k', new Linear(o.kvDim, inner, fusedSliceLinear(o.kvDim, o.fusedKvOut, o.qkvBias)));
    this.to_v = this.module('to_v', new Linear(o.kvDim, inner, fusedSliceLinear(o.kvDim, o.fusedKvOut, o.qkvBias)));
    this.norm_q = o.qkNorm ? this.module('norm_q', new RMSNorm(inner, { eps: QK_NORM_EPS })) : null;
    this.norm_k = o.qkNorm ? this.module('norm_k', new RMSNorm(inner, { eps: QK_NORM_EPS })) : null;
    [this.to_out] = this.moduleList('to_out', [new Linear(inner, o.queryDim, xavierLinear)]);
  }

  /**
   * q, k, v projections with qk-norm applied over all heads' channels (before the head split). Layers
   * that read the same input share one GEMM (q, k, v for self-attention; k, v for cross-attention).
   */
  protected project(x: Tensor, context: Tensor): [Tensor, Tensor, Tensor] {
    let q: Tensor, k: Tensor, v: Tensor;
    if (x === context) [q, k, v] = fusedLinears([this.to_q, this.to_k, this.to_v], x);
    else {
      q = this.to_q.forward(x);
      [k, v] = fusedLinears([this.to_k, this.to_v], context);
    }
    if (this.norm_q) q = this.norm_q.forward(q);
    if (this.norm_k) k = this.norm_k.forward(k);
    return [q, k, v];
  }
}

/** Self-attention over image tokens with ReLU linear attention (`attn1`). */
export class SanaLinearSelfAttention extends AttentionBase {
  /** x: [B, N, D] -> [B, N, D]. */
  forward(x: Tensor3D): Tensor3D {
    return tf.tidy(() => {
      const [q, k, v] = this.project(x, x); // [B, N, inner]
      return this.to_out.forward(reluLinearAttention(q, k, v, this.heads)) as Tensor3D;
    });
  }
}

/** Cross-attention from image tokens to caption tokens with softmax attention (`attn2`). */
export class SanaCrossAttention extends AttentionBase {
  /**
   * x: [B, N, D] image tokens, context: [B, L, D] caption tokens, bias: additive logits bias [B, 1, 1, L]
   * (0 keep, -10000 padding) or null -> [B, N, D].
   */
  forward(x: Tensor3D, context: Tensor3D, bias: Tensor4D | null): Tensor3D {
    return tf.tidy(() => {
      const [q, k, v] = this.project(x, context);
      return this.to_out.forward(softmaxAttention(q, k, v, this.heads, bias)) as Tensor3D;
    });
  }
}
