/**
 * Flow-DPM-Solver: multistep DPM-Solver++ (data prediction) on flow sigmas.
 *
 * Mirrors `DPMSolverMultistepScheduler.step` of diffusers (schedulers/scheduling_dpmsolver_multistep.py)
 * with `use_flow_sigmas`, `prediction_type: flow_prediction`, `algorithm_type: dpmsolver++`: the update
 * formulas of the first, second (midpoint or Heun) and third order solvers and the rule that picks the
 * order at each step are the reference's. With flow sigmas alpha = 1 - sigma and
 * lambda = log(alpha) - log(sigma); the model's velocity v becomes x0 = x - sigma * v.
 * Coefficients are JS numbers in float64 (the reference uses float32 0-d tensors; the difference is far
 * below the tolerance); the tensors are float32.
 */
import { tf, Tensor } from '../backend';
import { FlowDpmSolverConfig } from './config';
import { FlowSchedule, SampleOptions, VelocityFn, runFlowSteps } from './types';

export interface DpmSolverOptions {
  /** 1, 2 (SANA's default) or 3. */
  solverOrder: 1 | 2 | 3;
  /** Second-order variant: 'midpoint' (default) or 'heun'. */
  solverType: 'midpoint' | 'heun';
  /** Drop to lower orders over the last steps when the schedule has fewer than 15 steps. */
  lowerOrderFinal: boolean;
  /** Always take a first-order last step. */
  eulerAtFinal: boolean;
}

/** The solver settings of a parsed scheduler config. */
export function dpmSolverOptionsFrom(config: FlowDpmSolverConfig): DpmSolverOptions {
  return {
    solverOrder: config.solver_order,
    solverType: config.solver_type,
    lowerOrderFinal: config.lower_order_final,
    eulerAtFinal: config.euler_at_final,
  };
}

export const SANA_DPM_SOLVER: DpmSolverOptions = { solverOrder: 2, solverType: 'midpoint', lowerOrderFinal: true, eulerAtFinal: false };

/** Half log-SNR of a flow noise level: log(1 - sigma) - log(sigma); +Infinity at sigma 0. */
export function flowLambda(sigma: number): number {
  return Math.log(1 - sigma) - Math.log(sigma);
}

/** x0 = x - sigma * v: the data prediction from a flow velocity. */
export function flowToX0(x: Tensor, v: Tensor, sigma: number): Tensor {
  return tf.tidy(() => x.sub(v.mul(tf.scalar(sigma, 'float32'))));
}

/**
 * Which order the reference uses at step `index` of `total`, given how many steps were already taken
 * at increasing order (`warm`, capped at the solver order) and whether the step ends at sigma 0.
 */
export function dpmSolverOrderAt(index: number, total: number, warm: number, endsAtZero: boolean, opts: DpmSolverOptions): 1 | 2 | 3 {
  const lowerOrderFinal = index === total - 1 && (opts.eulerAtFinal || (opts.lowerOrderFinal && total < 15) || endsAtZero);
  const lowerOrderSecond = index === total - 2 && opts.lowerOrderFinal && total < 15;
  if (opts.solverOrder === 1 || warm < 1 || lowerOrderFinal) return 1;
  if (opts.solverOrder === 2 || warm < 2 || lowerOrderSecond) return 2;
  return 3;
}

/**
 * One DPM-Solver++ update from sigmas[i] to sigmas[i+1].
 * `x0s` holds the data predictions of the last steps, most recent LAST (x0s[x0s.length - 1] belongs to
 * sigmas[i]); `order` of them are used. Returns the new sample (same shape as x).
 */
export function dpmSolverUpdate(x: Tensor, x0s: Tensor[], sigmas: number[], i: number, order: 1 | 2 | 3, solverType: 'midpoint' | 'heun' = 'midpoint'): Tensor {
  if (x0s.length < order) throw new Error(`dpmSolverUpdate: order ${order} needs ${order} data predictions, got ${x0s.length}`);
  if (i + 1 - order < 0) throw new Error(`dpmSolverUpdate: order ${order} at step ${i} reaches before the first sigma`);
  return tf.tidy(() => {
    const sigmaT = sigmas[i + 1];
    const sigmaS0 = sigmas[i];
    const alphaT = 1 - sigmaT;
    const lambdaT = flowLambda(sigmaT);
    const lambdaS0 = flowLambda(sigmaS0);
    const h = lambdaT - lambdaS0;
    const expm = Math.exp(-h) - 1; // e^{-h} - 1 (equals -1 when the step ends at sigma 0)
    const m0 = x0s[x0s.length - 1];
    const s = (c: number) => tf.scalar(c, 'float32');
    // Every order starts from the first-order (DDIM-like) update.
    let out = x.mul(s(sigmaT / sigmaS0)).sub(m0.mul(s(alphaT * expm)));
    if (order === 1) return out;

    const m1 = x0s[x0s.length - 2];
    const lambdaS1 = flowLambda(sigmas[i - 1]);
    const r0 = (lambdaS0 - lambdaS1) / h;
    if (order === 2) {
      const d1 = m0.sub(m1).mul(s(1 / r0)); // D1 = (m0 - m1) / r0
      if (solverType === 'midpoint') return out.sub(d1.mul(s(0.5 * (alphaT * expm))));
      return out.add(d1.mul(s(alphaT * (expm / h + 1))));
    }

    const m2 = x0s[x0s.length - 3];
    const lambdaS2 = flowLambda(sigmas[i - 2]);
    const r1 = (lambdaS1 - lambdaS2) / h;
    const d10 = m0.sub(m1).mul(s(1 / r0));
    const d11 = m1.sub(m2).mul(s(1 / r1));
    const dd = d10.sub(d11);
    const d1 = d10.add(dd.mul(s(r0 / (r0 + r1))));
    const d2 = dd.mul(s(1 / (r0 + r1)));
    out = out.add(d1.mul(s(alphaT * (expm / h + 1))));
    return out.sub(d2.mul(s(alphaT * ((expm + h) / (h * h) - 0.5))));
  });
}

/**
 * Runs the multistep solver over the whole schedule from `x` (at sigmas[0]; not disposed) and returns
 * the final sample. The model is called once per step with the schedule's timestep for that step.
 * A model whose velocity always implies the same x0 is solved exactly (the result is that x0).
 */
export function sampleFlowDpmSolver(model: VelocityFn, x: Tensor, schedule: FlowSchedule, opts: SampleOptions & { solver?: DpmSolverOptions } = {}): Tensor {
  const solver = opts.solver ?? SANA_DPM_SOLVER;
  const { sigmas, timesteps } = schedule;
  const total = timesteps.length;
  const history: Tensor[] = []; // data predictions, most recent last
  let warm = 0;
  try {
    return runFlowSteps('flow DPM-Solver', model, x, schedule, opts, (cur, v, i) => {
      history.push(flowToX0(cur, v, sigmas[i]));
      if (history.length > solver.solverOrder) history.shift()?.dispose();
      const order = dpmSolverOrderAt(i, total, warm, sigmas[i + 1] === 0, solver);
      const next = dpmSolverUpdate(cur, history, sigmas, i, order, solver.solverType);
      if (warm < solver.solverOrder) warm++;
      return next;
    });
  } finally {
    for (const t of history) t.dispose();
  }
}
