/**
 * The rectified-flow (flow-matching) training objective, on one screen and apart from the network.
 *
 * Mirrors the conventions of SANA's flow training (NVlabs/Sana `diffusion/model/respace` flow path and
 * `train_scripts/train.py`) and of diffusers' `training_utils.compute_density_for_timestep_sampling` +
 * `FlowMatchEulerDiscreteScheduler.__init__` (the discrete training table used by the diffusers SANA
 * LoRA script). Nothing is copied; the formulas are:
 *
 *   sigma ~ logit-normal(mean, std) | uniform | mode     (sigma = 1 is pure noise, 0 is clean data)
 *   sigma' = k*sigma / (1 + (k-1)*sigma)                 (k = flow_shift)
 *   x_t    = (1 - sigma') * x0 + sigma' * noise
 *   target = noise - x0                                  (velocity; x0_pred = x_t - sigma' * v)
 *   timestep fed to the model = sigma' * num_train_timesteps
 *   loss   = mean((v_pred - target)^2)
 *
 * Host-side numbers (sigmas, timesteps) are rounded to float32 after every operation, the way the
 * reference computes them on float32 tensors, so tables match bit for bit.
 */
import { tf, Tensor, Scalar } from '../backend';
import { Rng } from '../nn/random';

const f32 = Math.fround;

/** SANA's timestep shift for one sigma, in float32 arithmetic: k*s / (1 + (k-1)*s). */
export function shiftSigma(sigma: number, shift: number): number {
  const s = f32(sigma);
  const num = f32(f32(shift) * s);
  const den = f32(1 + f32(f32(shift - 1) * s));
  return f32(num / den);
}

/** `shiftSigma` over an array. */
export function shiftSigmas(sigmas: ArrayLike<number>, shift: number): Float32Array {
  const out = new Float32Array(sigmas.length);
  for (let i = 0; i < sigmas.length; i++) out[i] = shiftSigma(sigmas[i], shift);
  return out;
}

/** Model timesteps for sigmas: sigma * num_train_timesteps, in float32. */
export function sigmasToTimesteps(sigmas: ArrayLike<number>, numTrainTimesteps = 1000): Float32Array {
  const out = new Float32Array(sigmas.length);
  for (let i = 0; i < sigmas.length; i++) out[i] = f32(f32(sigmas[i]) * numTrainTimesteps);
  return out;
}

/**
 * The training table of diffusers' `FlowMatchEulerDiscreteScheduler(shift=k)` right after construction:
 * timesteps N, N-1, ..., 1 as sigmas t/N, shifted, and timesteps = sigma' * N (both descending, N entries).
 */
export function flowMatchTrainingTable(numTrainTimesteps: number, shift: number): { sigmas: Float32Array; timesteps: Float32Array } {
  const n = numTrainTimesteps;
  const sigmas = new Float32Array(n);
  for (let i = 0; i < n; i++) sigmas[i] = shiftSigma(f32((n - i) / n), shift);
  return { sigmas, timesteps: sigmasToTimesteps(sigmas, n) };
}

export type WeightingScheme = 'logit_normal' | 'uniform' | 'mode';

/** How the per-sample noise level is drawn (SANA's `scheduler` block of a training config). */
export interface TimestepSampling {
  weightingScheme: WeightingScheme;
  logitMean: number;
  logitStd: number;
  /** Scale of the 'mode' density (diffusers' `mode_scale`, default 1.29). */
  modeScale: number;
  /** flow_shift k (1 = no shift; SANA uses 3.0 at 1024px). */
  flowShift: number;
  numTrainTimesteps: number;
  /**
   * false (SANA): the shift is applied to the continuous draw. true (diffusers scripts): the draw picks
   * an index floor(u * N) into the descending shifted training table.
   */
  discrete: boolean;
}

export const DEFAULT_TIMESTEP_SAMPLING: TimestepSampling = {
  weightingScheme: 'logit_normal',
  logitMean: 0,
  logitStd: 1,
  modeScale: 1.29,
  flowShift: 3,
  numTrainTimesteps: 1000,
  discrete: false,
};

/** One draw u in [0, 1) of the density (diffusers' `compute_density_for_timestep_sampling`). */
export function sampleDensity(rng: Rng, s: TimestepSampling): number {
  switch (s.weightingScheme) {
    case 'logit_normal': {
      const z = s.logitMean + s.logitStd * rng.normal();
      return 1 / (1 + Math.exp(-z));
    }
    case 'mode': {
      const u = rng.uniform();
      return 1 - u - s.modeScale * (Math.cos((Math.PI * u) / 2) ** 2 - 1 + u);
    }
    case 'uniform':
      return rng.uniform();
  }
}

/**
 * Per-sample shifted sigmas and model timesteps for a batch, drawn from `rng`.
 * Returns float32 arrays of length `batch`.
 */
export function sampleTrainingSigmas(rng: Rng, batch: number, s: TimestepSampling): { sigmas: Float32Array; timesteps: Float32Array } {
  const sigmas = new Float32Array(batch);
  const table = s.discrete ? flowMatchTrainingTable(s.numTrainTimesteps, s.flowShift) : null;
  for (let i = 0; i < batch; i++) {
    const u = Math.min(Math.max(sampleDensity(rng, s), 0), 1);
    if (table) {
      // floor(u * N) as torch's `.long()`; u == 1 cannot be drawn from [0, 1) but is clamped anyway.
      const idx = Math.min(Math.floor(u * s.numTrainTimesteps), s.numTrainTimesteps - 1);
      sigmas[i] = table.sigmas[idx];
    } else {
      sigmas[i] = shiftSigma(u, s.flowShift);
    }
  }
  return { sigmas, timesteps: sigmasToTimesteps(sigmas, s.numTrainTimesteps) };
}

/** sigma [B] broadcast against a [B, ...] tensor of rank `rank`. */
function perSample(sigmas: Tensor | Float32Array, rank: number): Tensor {
  const s = sigmas instanceof tf.Tensor ? sigmas : tf.tensor1d(sigmas as Float32Array, 'float32');
  return s.reshape([s.shape[0], ...new Array(rank - 1).fill(1)]);
}

/**
 * x_t = (1 - sigma) * x0 + sigma * noise, per sample.
 * @param x0 clean sample [B, ...] (any layout) @param noise same shape @param sigmas [B]
 */
export function noisyInput(x0: Tensor, noise: Tensor, sigmas: Tensor | Float32Array): Tensor {
  return tf.tidy(() => {
    const s = perSample(sigmas, x0.rank);
    return tf.sub(1, s).mul(x0).add(s.mul(noise));
  });
}

/** The velocity the model is trained to predict: noise - x0 (same shape as x0). */
export function velocityTarget(x0: Tensor, noise: Tensor): Tensor {
  return tf.tidy(() => tf.sub(noise, x0));
}

/** Mean squared error over every element (weighting 'none' / logit-normal: weight 1). */
export function flowMatchingLoss(prediction: Tensor, target: Tensor): Scalar {
  return tf.tidy(() => tf.squaredDifference(prediction, target).mean() as Scalar);
}
