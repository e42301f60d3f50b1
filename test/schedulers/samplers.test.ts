/**
 * Samplers on fields with known solutions, the order rule of DPM-Solver, memory and bad input.
 */
import { tf, Tensor } from '../../src/backend';
import {
  DpmSolverOptions,
  FlowSchedule,
  StepInfo,
  dpmSolverOrderAt,
  flowDpmSolverSchedule,
  flowEulerSchedule,
  parseFlowDpmSolverConfig,
  parseFlowEulerConfig,
  sampleFlowDpmSolver,
  sampleFlowEuler,
  samplerFromConfig,
} from '../../src/schedulers';
import { rngFor } from '../../src/nn/random';
import { expectNoLeak, useTestBackend } from '../helpers';

beforeAll(useTestBackend);

const SHAPE = [2, 3, 4, 5];
const size = SHAPE.reduce((a, b) => a * b, 1);
const host = (stream: string) => rngFor(7, stream).normalArray(size);

const dpmConfig = parseFlowDpmSolverConfig({ flow_shift: 3.0, use_flow_sigmas: true, prediction_type: 'flow_prediction' }).config;
const eulerConfig = parseFlowEulerConfig({ shift: 3.0 }).config;

function maxAbsDiff(a: Tensor, b: Float32Array | Tensor): number {
  const x = a.dataSync();
  const y = b instanceof tf.Tensor ? b.dataSync() : b;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('Flow-Euler', () => {
  test('a constant velocity field is integrated exactly: x_N = x_0 + (sigma_N - sigma_0) v', () => {
    const x0 = tf.tensor(host('x'), SHAPE);
    const vHost = host('v');
    const v = tf.tensor(vHost, SHAPE);
    const schedule = flowEulerSchedule(eulerConfig, 28);
    const out = sampleFlowEuler(() => v.clone(), x0, schedule);
    const expected = tf.tidy(() => x0.add(v.mul(schedule.sigmas[28] - schedule.sigmas[0])));
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-5);
    tf.dispose([x0, v, out, expected]);
  });

  test('the straight path of a fixed (x0, noise) pair is followed exactly', () => {
    // x(s) = (1 - s) x0 + s n has velocity n - x0 everywhere on the path.
    const data = tf.tensor(host('data'), SHAPE);
    const noise = tf.tensor(host('noise'), SHAPE);
    const schedule = flowEulerSchedule(eulerConfig, 10);
    const start = tf.tidy(() => data.mul(1 - schedule.sigmas[0]).add(noise.mul(schedule.sigmas[0])));
    const out = sampleFlowEuler(() => noise.sub(data), start, schedule);
    expect(maxAbsDiff(out, data)).toBeLessThan(1e-5);
    tf.dispose([data, noise, start, out]);
  });
});

describe('Flow-DPM-Solver', () => {
  const solvers: [string, DpmSolverOptions][] = [
    ['order 1', { solverOrder: 1, solverType: 'midpoint', lowerOrderFinal: true, eulerAtFinal: false }],
    ['order 2 midpoint (SANA)', { solverOrder: 2, solverType: 'midpoint', lowerOrderFinal: true, eulerAtFinal: false }],
    ['order 2 heun', { solverOrder: 2, solverType: 'heun', lowerOrderFinal: true, eulerAtFinal: false }],
    ['order 3', { solverOrder: 3, solverType: 'midpoint', lowerOrderFinal: false, eulerAtFinal: false }],
  ];

  test.each(solvers)('%s: a model that always implies the same x0 is solved exactly, on the path at every step', (_name, solver) => {
    const x0Host = host('x0');
    const target = tf.tensor(x0Host, SHAPE);
    const noise = tf.tensor(host('eps'), SHAPE);
    const schedule = flowDpmSolverSchedule(dpmConfig, 20);
    const start = tf.tidy(() => target.mul(1 - schedule.sigmas[0]).add(noise.mul(schedule.sigmas[0])));
    // v = (x - x0) / sigma makes the data prediction x - sigma v equal x0 at any x.
    const model = (x: Tensor, step: StepInfo) => tf.tidy(() => x.sub(target).div(step.sigma));
    let worst = 0;
    const out = sampleFlowDpmSolver(model, start, schedule, {
      solver,
      onStep: (e) => {
        const onPath = tf.tidy(() => target.mul(1 - e.sigmaNext).add(noise.mul(e.sigmaNext)));
        worst = Math.max(worst, maxAbsDiff(e.x, onPath));
        onPath.dispose();
      },
    });
    expect(worst).toBeLessThan(1e-4);
    expect(maxAbsDiff(out, x0Host)).toBeLessThan(1e-5);
    tf.dispose([target, noise, start, out]);
  });

  test('the last step to sigma 0 returns the data prediction itself', () => {
    const schedule: FlowSchedule = { sigmas: [0.8, 0], timesteps: [800] };
    const x = tf.tensor(host('x'), SHAPE);
    const v = tf.tensor(host('v'), SHAPE);
    const out = sampleFlowDpmSolver(() => v.clone(), x, schedule);
    const expected = tf.tidy(() => x.sub(v.mul(0.8)));
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-6);
    tf.dispose([x, v, out, expected]);
  });

  test('order rule: first order first, second order after, lower order at the end below 15 steps', () => {
    const sana: DpmSolverOptions = { solverOrder: 2, solverType: 'midpoint', lowerOrderFinal: true, eulerAtFinal: false };
    const orders = (n: number, opts: DpmSolverOptions, endsAtZero = true) =>
      Array.from({ length: n }, (_, i) => dpmSolverOrderAt(i, n, Math.min(i, opts.solverOrder), endsAtZero, opts));
    expect(orders(5, sana)).toEqual([1, 2, 2, 2, 1]);
    expect(orders(20, sana)).toEqual([1, ...Array(18).fill(2), 1]);
    // With a non-zero final sigma the last step stays second order from 15 steps on.
    expect(orders(15, sana, false).slice(-1)).toEqual([2]);
    expect(orders(14, sana, false).slice(-1)).toEqual([1]);
    const third: DpmSolverOptions = { ...sana, solverOrder: 3 };
    expect(orders(6, third)).toEqual([1, 2, 3, 3, 2, 1]);
    expect(orders(16, third).slice(-3)).toEqual([3, 3, 1]);
    expect(orders(4, { ...sana, solverOrder: 1 })).toEqual([1, 1, 1, 1]);
  });
});

describe('contract', () => {
  const schedule = flowDpmSolverSchedule(dpmConfig, 6);

  test.each(['dpm', 'euler'])('%s: the model sees each step index, sigma and timestep once, in order', (which) => {
    const sampler = samplerFromConfig(which === 'dpm' ? dpmConfig : eulerConfig);
    const sched = sampler.schedule(6);
    const seen: StepInfo[] = [];
    const x = tf.zeros(SHAPE);
    const out = sampler.sample((xx, step) => {
      seen.push(step);
      return tf.onesLike(xx);
    }, x, sched);
    expect(seen.map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(seen.map((s) => s.sigma)).toEqual(sched.sigmas.slice(0, 6));
    expect(seen.map((s) => s.timestep)).toEqual(sched.timesteps);
    expect(seen.every((s) => s.total === 6)).toBe(true);
    tf.dispose([x, out]);
  });

  test.each(['dpm', 'euler'])('%s: no tensor leaks across a sampling loop, and the input is not disposed', async (which) => {
    const sampler = samplerFromConfig(which === 'dpm' ? dpmConfig : eulerConfig);
    const sched = sampler.schedule(5);
    const x = tf.tensor(host('x'), SHAPE);
    const model = (xx: Tensor, step: StepInfo) => tf.tidy(() => xx.mul(0.5).add(step.sigma));
    await expectNoLeak(() => {
      const out = sampler.sample(model, x, sched, { onStep: (e) => void e.x.shape });
      out.dispose();
    });
    expect(x.isDisposed).toBe(false);
    x.dispose();
  });

  test('a model returning the wrong shape fails clearly and leaks nothing', () => {
    const x = tf.zeros(SHAPE);
    const before = tf.memory().numTensors;
    expect(() => sampleFlowDpmSolver(() => tf.zeros([1, 2]), x, schedule)).toThrow(/model returned shape \[1,2\] at step 0 for a sample of shape \[2,3,4,5\]/);
    expect(() => sampleFlowEuler((xx) => xx, x, schedule)).toThrow(/returned its input/);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  test('an error thrown mid-loop (by the model or a step callback) leaks nothing', () => {
    const x = tf.zeros(SHAPE);
    const before = tf.memory().numTensors;
    const failing = (xx: Tensor, step: StepInfo) => {
      if (step.index === 3) throw new Error('boom');
      return tf.onesLike(xx);
    };
    expect(() => sampleFlowDpmSolver(failing, x, schedule)).toThrow('boom');
    expect(() =>
      sampleFlowEuler((xx) => tf.onesLike(xx), x, schedule, {
        onStep: (e) => {
          if (e.index === 2) throw new Error('stop');
        },
      }),
    ).toThrow('stop');
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  test('malformed schedules are rejected', () => {
    const x = tf.zeros([1]);
    expect(() => sampleFlowEuler((xx) => tf.onesLike(xx), x, { sigmas: [1, 0.5], timesteps: [1000, 500] })).toThrow(/2 steps needs 3 sigmas, got 2/);
    expect(() => sampleFlowEuler((xx) => tf.onesLike(xx), x, { sigmas: [1], timesteps: [] })).toThrow(/no steps/);
    expect(() => sampleFlowDpmSolver((xx) => tf.onesLike(xx), x, { sigmas: [1, NaN], timesteps: [1] })).toThrow(/not a finite value/);
    x.dispose();
  });
});
