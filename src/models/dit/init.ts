/**
 * Initialisation for training from scratch as the SANA trainer does it (NVlabs/Sana
 * `diffusion/model/nets/sana.py`, `Sana.initialize_weights`, and the parameter constructors in
 * `sana_blocks.py`), translated to the diffusers parameter names:
 *
 * - every Linear: xavier-uniform weight, zero bias. SANA's self-attention projects q, k, v with one
 *   fused `qkv` Linear and the cross-attention k, v with one fused `kv_linear`, so xavier's fan-out
 *   there is that of the fused weight (3x resp. 2x the head width); the split diffusers weights get the
 *   same distribution;
 * - patch embedding: xavier-uniform over the flattened [out, in*p*p] kernel, PyTorch-default bias;
 * - timestep (and guidance) MLPs, the adaLN-single `time_embed.linear` and the caption MLP: N(0, 0.02)
 *   weights, zero biases;
 * - `scale_shift_table`s: randn / sqrt(width); `caption_norm.weight`: 0.01 (SANA's `y_norm_scale_factor`);
 * - GLUMBConv convolutions: PyTorch's default (SANA leaves them alone).
 *
 * All draws come from `Module.initialize(seed)`'s per-key streams.
 */
import { Init, LinearOptions, normal, xavierUniform, zeros } from '../../nn';

/** Uniform(-b, b) with xavier's bound for the given fans. */
export function xavierBound(fanIn: number, fanOut: number): Init {
  const b = Math.sqrt(6 / (fanIn + fanOut));
  return { kind: 'uniform', low: -b, high: b };
}

/** A Linear initialised as SANA's `_basic_init`: xavier-uniform weight, zero bias. */
export const xavierLinear: LinearOptions = { weightInit: xavierUniform(), biasInit: zeros };

/** A Linear that is one slice of a fused SANA projection with `fusedOut` outputs in all. */
export function fusedSliceLinear(inFeatures: number, fusedOut: number, bias: boolean): LinearOptions {
  return { weightInit: xavierBound(inFeatures, fusedOut), biasInit: zeros, bias };
}

/** The timestep, guidance, adaLN and caption MLPs: N(0, 0.02) weight, zero bias. */
export const smallNormalLinear: LinearOptions = { weightInit: normal(0.02), biasInit: zeros };

/** SANA's initial scale of the caption RMSNorm (`y_norm_scale_factor`). */
export const CAPTION_NORM_INIT = 0.01;
