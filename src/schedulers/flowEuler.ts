/**
 * Flow-Euler: the explicit Euler method on the flow ODE dx/dsigma = v.
 *
 * Mirrors the deterministic branch of `FlowMatchEulerDiscreteScheduler.step` in diffusers
 * (schedulers/scheduling_flow_match_euler_discrete.py): x_next = x + (sigma_next - sigma) * v, with the
 * step size computed in float32 as the reference does.
 */
import { tf, Tensor } from '../backend';
import { FlowSchedule, SampleOptions, VelocityFn, assertSchedule, callModel } from './types';

/** One Euler step. x, v: same shape (any layout); returns x + (sigmaNext - sigma) * v. */
export function flowEulerStep(x: Tensor, v: Tensor, sigma: number, sigmaNext: number): Tensor {
  return tf.tidy(() => {
    const dt = Math.fround(Math.fround(sigmaNext) - Math.fround(sigma));
    return x.add(v.mul(tf.scalar(dt, 'float32')));
  });
}

/**
 * Integrates from `x` (at sigmas[0]; not disposed) through the whole schedule with Euler steps and
 * returns the sample at the last sigma. A constant velocity field is integrated exactly.
 */
export function sampleFlowEuler(model: VelocityFn, x: Tensor, schedule: FlowSchedule, opts: SampleOptions = {}): Tensor {
  assertSchedule(schedule, 'flow Euler');
  const { sigmas, timesteps } = schedule;
  const total = timesteps.length;
  let cur = x;
  try {
    for (let i = 0; i < total; i++) {
      const v = callModel(model, cur, { index: i, total, sigma: sigmas[i], timestep: timesteps[i] });
      let next: Tensor;
      try {
        next = flowEulerStep(cur, v, sigmas[i], sigmas[i + 1]);
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
