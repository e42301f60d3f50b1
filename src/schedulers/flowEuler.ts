/**
 * Flow-Euler: the explicit Euler method on the flow ODE dx/dsigma = v.
 *
 * Mirrors the deterministic branch of `FlowMatchEulerDiscreteScheduler.step` in diffusers
 * (schedulers/scheduling_flow_match_euler_discrete.py): x_next = x + (sigma_next - sigma) * v, with the
 * step size computed in float32 as the reference does.
 */
import { tf, Tensor } from '../backend';
import { FlowSchedule, SampleOptions, VelocityFn, runFlowSteps } from './types';

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
  const { sigmas } = schedule;
  return runFlowSteps('flow Euler', model, x, schedule, opts, (cur, v, i) => flowEulerStep(cur, v, sigmas[i], sigmas[i + 1]));
}
