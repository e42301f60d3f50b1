/**
 * Flow sigma schedules, bit for bit as diffusers' `set_timesteps` builds them.
 *
 * Mirrors `DPMSolverMultistepScheduler.set_timesteps` (use_flow_sigmas branch) and
 * `FlowMatchEulerDiscreteScheduler.__init__` / `set_timesteps` of diffusers
 * (schedulers/scheduling_dpmsolver_multistep.py, scheduling_flow_match_euler_discrete.py).
 * The reference mixes float64 NumPy with float32 torch tensors; which step runs in which precision
 * decides the last bits of the sigmas and, for DPM-Solver, which integer each timestep truncates to.
 * `Math.fround` after each float32 operation reproduces torch exactly (basic operations rounded once
 * in double and then to float32 equal the correctly rounded float32 result).
 */
import { FlowDpmSolverConfig, FlowEulerConfig } from './config';
import { FlowSchedule } from './types';

const f32 = Math.fround;

/** `numpy.linspace(start, stop, num)` in float64, same arithmetic: start + i * step, last = stop. */
export function linspace(start: number, stop: number, num: number): number[] {
  if (!Number.isInteger(num) || num < 1) throw new Error(`linspace: num must be an integer >= 1, got ${num}`);
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** The SD3/SANA timestep shift s' = k s / (1 + (k - 1) s), in float64 (the reference's NumPy path). */
export function shiftSigma(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

/** The same shift on a float32 torch tensor with Python-float scalars (the reference's `__init__`). */
function shiftSigmaF32(sigma: number, shift: number): number {
  return f32(f32(f32(shift) * sigma) / f32(1 + f32(f32(shift - 1) * sigma)));
}

function assertSteps(steps: number, who: string): void {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`${who}: the number of inference steps must be an integer >= 1, got ${steps}`);
}

/**
 * sqrt((1 - alphas_cumprod[0]) / alphas_cumprod[0]) of the discrete beta schedule in float32: the last
 * sigma for `final_sigmas_type: "sigma_min"`.
 */
function sigmaMinOfBetas(config: FlowDpmSolverConfig): number {
  let beta0: number;
  if (config.trained_betas) beta0 = f32(config.trained_betas[0]);
  else if (config.beta_schedule === 'linear') beta0 = f32(config.beta_start);
  else if (config.beta_schedule === 'scaled_linear') {
    const root = f32(Math.sqrt(config.beta_start));
    beta0 = f32(root * root);
  } else {
    // Glide cosine schedule: beta_0 = min(1 - alpha_bar(1/T) / alpha_bar(0), 0.999) in float64.
    const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    beta0 = f32(Math.min(1 - alphaBar(1 / config.num_train_timesteps) / alphaBar(0), 0.999));
  }
  const alpha0 = f32(1 - beta0);
  return f32(Math.sqrt(f32(f32(1 - alpha0) / alpha0)));
}

/**
 * DPM-Solver flow schedule for `steps` steps: alphas = linspace(1, 1/T, N+1), sigma = shift(1 - alpha)
 * reversed without its 0; timesteps = trunc(sigma * T) (int64, truncated, not rounded); sigmas stored
 * as float32 with a final 0 (or sigma_min) appended.
 *
 * `mu` (dynamic shifting) replaces the shift by exp(mu), as the reference's `set_timesteps(mu=...)` does.
 */
export function flowDpmSolverSchedule(config: FlowDpmSolverConfig, steps: number, opts: { mu?: number } = {}): FlowSchedule {
  assertSteps(steps, 'flow DPM-Solver');
  if (opts.mu !== undefined && !config.use_dynamic_shifting) {
    throw new Error('flow DPM-Solver: mu is only accepted with use_dynamic_shifting: true');
  }
  const shift = opts.mu !== undefined ? Math.exp(opts.mu) : config.flow_shift;
  const T = config.num_train_timesteps;
  const alphas = linspace(1, 1 / T, steps + 1);
  const shifted = alphas.map((a) => shiftSigma(1.0 - a, shift)); // increasing, first is 0
  const sigmas64 = shifted.reverse().slice(0, steps); // decreasing, N values
  const timesteps = sigmas64.map((s) => Math.trunc(s * T));
  const last = config.final_sigmas_type === 'zero' ? 0 : sigmaMinOfBetas(config);
  return { sigmas: [...sigmas64.map(f32), last], timesteps };
}

/**
 * Flow-Euler schedule for `steps` steps. The reference shifts its 1000-entry training table in
 * `__init__` (so sigma_min = shift(1/T) in float32) and then shifts again in `set_timesteps`:
 * sigma = shift(linspace(sigma_max*T, sigma_min*T, N) / T). Timesteps are float32 sigma*T.
 *
 * `mu` is required with `use_dynamic_shifting` (resolution-dependent shift instead of `shift`).
 */
export function flowEulerSchedule(config: FlowEulerConfig, steps: number, opts: { mu?: number } = {}): FlowSchedule {
  assertSteps(steps, 'flow Euler');
  if (config.use_dynamic_shifting && opts.mu === undefined) throw new Error('flow Euler: use_dynamic_shifting needs mu');
  const T = config.num_train_timesteps;
  // 1. The training table's end points, in float32 (shifted unless the shift is dynamic).
  const tableSigma = (t: number) => {
    const s = f32(f32(t) / T);
    return config.use_dynamic_shifting ? s : shiftSigmaF32(s, config.shift);
  };
  const sigmaMax = tableSigma(T);
  const sigmaMin = tableSigma(1);
  // 2. Inference sigmas in float64, shifted (again).
  let sigmas = linspace(sigmaMax * T, sigmaMin * T, steps).map((t) => t / T);
  if (config.use_dynamic_shifting) {
    const mu = opts.mu as number;
    sigmas = sigmas.map((t) => (config.time_shift_type === 'exponential' ? Math.exp(mu) / (Math.exp(mu) + (1 / t - 1)) : mu / (mu + (1 / t - 1))));
  } else {
    sigmas = sigmas.map((s) => shiftSigma(s, config.shift));
  }
  // 3. Optional stretch so that the schedule ends at shift_terminal.
  if (config.shift_terminal) {
    const oneMinus = sigmas.map((s) => 1 - s);
    const scale = oneMinus[oneMinus.length - 1] / (1 - config.shift_terminal);
    sigmas = oneMinus.map((z) => 1 - z / scale);
  }
  // 4. float32 storage; timesteps derived from the float32 sigmas.
  let s32 = sigmas.map(f32);
  if (config.invert_sigmas) {
    s32 = s32.map((s) => f32(1 - s));
    return { sigmas: [...s32, 1], timesteps: s32.map((s) => f32(s * T)) };
  }
  return { sigmas: [...s32, 0], timesteps: s32.map((s) => f32(s * T)) };
}

