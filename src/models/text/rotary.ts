/**
 * Rotary position embedding as transformers applies it to Gemma-2 (`Gemma2RotaryEmbedding`,
 * `rotate_half`, `apply_rotary_pos_emb` in `models/gemma2/modeling_gemma2.py`): the non-interleaved
 * variant, where dimension i pairs with i + head_dim/2; frequencies as `compute_default_rope_parameters`,
 * or scaled as `_compute_linear_scaling_rope_parameters` / `_compute_dynamic_ntk_parameters` of
 * `modeling_rope_utils.py` do.
 *
 * The tables are computed on the host with the reference's float32 rounding at each step
 * (exponent, power, reciprocal, angle), so long prompts (500+ positions) get the same angles.
 */
import { tf, Tensor, Tensor2D } from '../../backend';
import type { Gemma2RopeScaling } from './gemma2Config';

/** inv_freq[i] = 1 / theta^(2i / dim), rounded to float32 like the reference. [dim / 2] */
export function rotaryInverseFrequencies(headDim: number, theta: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround((2 * i) / headDim);
    out[i] = Math.fround(1 / Math.fround(Math.pow(theta, exponent)));
  }
  return out;
}

/**
 * The frequencies a forward pass over `seqLen` positions uses under a RoPE scaling:
 * - linear: default frequencies / factor;
 * - dynamic: the default ones up to `maxPositions`; beyond, the base becomes
 *   theta * (factor * seqLen / maxPositions - (factor - 1))^(d / (d - 2)), in float32 as the reference's
 *   tensor arithmetic. (transformers caches the longest length seen so far across calls; a single call
 *   on a fresh model, which is what this reproduces, uses the call's own length.)
 */
export function scaledInverseFrequencies(headDim: number, theta: number, scaling: Gemma2RopeScaling | null | undefined, seqLen: number, maxPositions: number): Float32Array {
  if (!scaling) return rotaryInverseFrequencies(headDim, theta);
  const f = Math.fround;
  if (scaling.rope_type === 'linear') return rotaryInverseFrequencies(headDim, theta).map((x) => f(x / scaling.factor));
  if (seqLen <= maxPositions) return rotaryInverseFrequencies(headDim, theta);
  const ratio = f(f(f(scaling.factor * seqLen) / maxPositions) - (scaling.factor - 1));
  const base = f(theta * f(Math.pow(ratio, headDim / (headDim - 2))));
  return rotaryInverseFrequencies(headDim, base);
}

/**
 * cos and sin tables for positions 0..seqLen-1: row p is [cos(p f_0..f_{d/2-1}), cos(p f_0..)] (the
 * frequencies repeated twice, as `torch.cat((freqs, freqs))`). Returns host arrays of [seqLen, headDim].
 * `inverseFrequencies` overrides the default ones (see `scaledInverseFrequencies`).
 */
export function rotaryTables(seqLen: number, headDim: number, theta: number, inverseFrequencies?: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const inv = inverseFrequencies ?? rotaryInverseFrequencies(headDim, theta);
  const half = headDim / 2;
  const cos = new Float32Array(seqLen * headDim);
  const sin = new Float32Array(seqLen * headDim);
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inv[i]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * headDim + i] = c;
      cos[p * headDim + half + i] = c;
      sin[p * headDim + i] = s;
      sin[p * headDim + half + i] = s;
    }
  }
  return { cos, sin };
}

/**
 * x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1] for x = [x1, x2] split in halves.
 * x: [..., S, D]; cos, sin: [S, D] (broadcast over the leading axes).
 */
export function applyRotary(x: Tensor, cos: Tensor2D, sin: Tensor2D): Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.shape.length - 1];
    const [x1, x2] = tf.split(x, [d / 2, d / 2], -1);
    const rotated = tf.concat([x2.neg(), x1], -1);
    return x.mul(cos).add(rotated.mul(sin));
  });
}
