/**
 * The one contract every sampler follows: `sample(model, x, schedule) -> x`.
 *
 * A schedule is plain numbers (sigmas and the matching model timesteps); only the latent `x` and the
 * model's output are tensors. Guidance, timestep scaling and text layout are adapted outside the
 * sampler (see `pipelines/guidance`), so a sampler never knows what model it drives.
 */
import { Tensor } from '../backend';

/** Where the sampler is when it asks the model for a velocity. */
export interface StepInfo {
  /** Step number, 0-based. */
  index: number;
  /** Number of steps in the schedule. */
  total: number;
  /** Noise level of `x` (flow convention: x = (1 - sigma) x0 + sigma noise). */
  sigma: number;
  /** The timestep the reference feeds the model at this step, in training units (0..num_train_timesteps). */
  timestep: number;
}

/**
 * A flow model as a sampler sees it: the velocity `v = noise - x0` predicted at `x` ([B, H, W, C] or
 * any layout; samplers are elementwise). Must return a new tensor shaped like `x`; the sampler owns
 * (and disposes) it.
 */
export type VelocityFn = (x: Tensor, step: StepInfo) => Tensor;

/** A discretisation of the flow ODE from noise (sigma near 1) to data (sigma 0). */
export interface FlowSchedule {
  /** N + 1 decreasing noise levels, float32 values as the reference stores them; the last is the end point. */
  sigmas: number[];
  /** N model timesteps, one per step (integers for DPM-Solver, float32 sigma*1000 for Euler). */
  timesteps: number[];
}

/** Everything a sampler reports after a step (tensors are borrowed: clone to keep them past the call). */
export interface StepEnd {
  index: number;
  total: number;
  sigma: number;
  sigmaNext: number;
  timestep: number;
  /** The model's raw output at this step (what the reference passes to `scheduler.step`). */
  modelOutput: Tensor;
  /** The sample after the step. */
  x: Tensor;
}

export interface SampleOptions {
  /** Called after every step, synchronously; must not dispose or keep the tensors it is given. */
  onStep?: (end: StepEnd) => void;
}

/** A sampler with its schedule rule: what `samplerFromConfig` builds from a scheduler_config.json. */
export interface FlowSampler {
  /** `flow_dpm_solver` or `flow_euler`. */
  readonly name: 'flow_dpm_solver' | 'flow_euler';
  /** The schedule for `steps` inference steps, exactly as the reference's `set_timesteps(steps)`. */
  schedule(steps: number): FlowSchedule;
  /** Runs the whole schedule from `x` (not disposed) and returns a new tensor. */
  sample(model: VelocityFn, x: Tensor, schedule: FlowSchedule, opts?: SampleOptions): Tensor;
}

/** Checks that a schedule is well formed (N + 1 sigmas for N timesteps, N >= 1, finite values). */
export function assertSchedule(schedule: FlowSchedule, who: string): void {
  const { sigmas, timesteps } = schedule;
  if (timesteps.length < 1) throw new Error(`${who}: the schedule has no steps`);
  if (sigmas.length !== timesteps.length + 1) {
    throw new Error(`${who}: a schedule of ${timesteps.length} steps needs ${timesteps.length + 1} sigmas, got ${sigmas.length}`);
  }
  for (const s of sigmas) if (!Number.isFinite(s) || s < 0) throw new Error(`${who}: sigma ${s} is not a finite value >= 0`);
}

/** Calls the model and checks that it returned a velocity shaped like `x` (a bad model fails clearly). */
export function callModel(model: VelocityFn, x: Tensor, step: StepInfo): Tensor {
  const v = model(x, step);
  if (v === x) throw new Error(`sampler: the model returned its input at step ${step.index}; it must return a new tensor`);
  if (v.shape.length !== x.shape.length || v.shape.some((d, i) => d !== x.shape[i])) {
    v.dispose();
    throw new Error(`sampler: the model returned shape [${v.shape}] at step ${step.index} for a sample of shape [${x.shape}]`);
  }
  return v;
}

/**
 * The loop every flow sampler runs: at each step, call the model, let `update` turn (x, v) into the
 * next x, report the step, and keep tensor lifetimes straight: the caller's `x` is never disposed,
 * each intermediate x and model output is disposed once the next x exists, and nothing leaks when the
 * model, `update` or `onStep` throws.
 * @param update (x at step i, model output at step i, i) -> a new tensor, the x of step i + 1
 * @returns the sample at the last sigma (a new tensor)
 */
export function runFlowSteps(who: string, model: VelocityFn, x: Tensor, schedule: FlowSchedule, opts: SampleOptions, update: (cur: Tensor, v: Tensor, i: number) => Tensor): Tensor {
  assertSchedule(schedule, who);
  const { sigmas, timesteps } = schedule;
  const total = timesteps.length;
  let cur = x;
  try {
    for (let i = 0; i < total; i++) {
      const v = callModel(model, cur, { index: i, total, sigma: sigmas[i], timestep: timesteps[i] });
      let next: Tensor;
      try {
        next = update(cur, v, i);
      } catch (e) {
        v.dispose();
        throw e;
      }
      try {
        opts.onStep?.({ index: i, total, sigma: sigmas[i], sigmaNext: sigmas[i + 1], timestep: timesteps[i], modelOutput: v, x: next });
      } finally {
        v.dispose();
        if (cur !== x) cur.dispose();
        cur = next;
      }
    }
  } catch (e) {
    if (cur !== x) cur.dispose();
    throw e;
  }
  return cur === x ? x.clone() : cur;
}
