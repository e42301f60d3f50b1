/**
 * Golden runner: scheduler cases (`flow_dpm_solver`, `flow_euler`).
 *
 * For every step count N in the case (`timesteps_N`): the schedule (timesteps, sigmas) from the case's
 * scheduler config, then the trajectory twice: open loop (the recorded `model_outputs_N[i]` fed to
 * step i, testing the update rule alone) and closed loop (the case's closed-form fake model evaluated
 * on our own trajectory, as the reference did).
 */
import { tf, Tensor } from '../../backend';
import { toFloat32 } from '../../io/safetensors';
import { FlowSampler, StepInfo, VelocityFn, parseFlowSchedulerConfig, samplerFromConfig } from '../../schedulers';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, Tolerance, compareTensor, toleranceFor } from '../compare';
import { GoldenRunner, configClass } from '../runner';

const DEFAULT_SAMPLES_TOL: Tolerance = { metric: 'allclose', atol: 1e-4, rtol: 1e-4 };

interface FakeModel {
  a: number;
  b: number;
  c: number;
}

/** mo = a*x + b*x_init*sigma_i + c*t_i/1000, in float32 and left to right as `case.json` specifies. */
function fakeModel(spec: FakeModel, xInit: Tensor): VelocityFn {
  return (x: Tensor, step: StepInfo) =>
    tf.tidy(() => {
      const f32 = (v: number) => tf.scalar(v, 'float32');
      const tTerm = Math.fround(Math.fround(Math.fround(spec.c) * Math.fround(step.timestep)) / 1000);
      return x.mul(f32(spec.a)).add(xInit.mul(f32(spec.b)).mul(f32(step.sigma))).add(f32(tTerm));
    });
}

/** The trajectory [x0, x1, ..., xN] flattened, from a sampler run. */
function trajectory(sampler: FlowSampler, model: VelocityFn, x: Tensor, schedule: ReturnType<FlowSampler['schedule']>): Float32Array {
  const steps: Float32Array[] = [x.dataSync() as Float32Array];
  const out = sampler.sample(model, x, schedule, { onStep: (e) => steps.push(e.x.dataSync() as Float32Array) });
  out.dispose();
  const flat = new Float32Array(steps.reduce((n, s) => n + s.length, 0));
  let o = 0;
  for (const s of steps) {
    flat.set(s, o);
    o += s.length;
  }
  return flat;
}

export const schedulersRunner: GoldenRunner = {
  id: 'scheduler',
  matches: (c) => ['DPMSolverMultistepScheduler', 'FlowMatchEulerDiscreteScheduler'].includes(configClass(c)),
  run: async (c: GoldenCase): Promise<CheckResult[]> => {
    const { config } = parseFlowSchedulerConfig(c.config, c.file('config.json'));
    const sampler = samplerFromConfig(config);
    const stepCounts = [...c.io.keys()].filter((k) => /^timesteps_\d+$/.test(k)).map((k) => Number(k.slice('timesteps_'.length)));
    if (stepCounts.length === 0) throw new Error(`${c.name}: io.safetensors has no timesteps_N tensor`);
    const xInitHost = ioTensor(c, 'x_init');
    const fake = c.spec.fake_model as FakeModel | undefined;
    const results: CheckResult[] = [];
    const xInit = tf.tensor(toFloat32(xInitHost, 'x_init'), xInitHost.shape, 'float32');
    try {
      for (const n of stepCounts.sort((a, b) => a - b)) {
        const schedule = sampler.schedule(n);
        // 1. Schedule: integer timesteps (DPM-Solver) exactly; float timesteps within 1e-3 units of t.
        const refT = ioTensor(c, `timesteps_${n}`);
        const tTol: Tolerance = refT.dtype.startsWith('I') ? { metric: 'exact', atol: 0, rtol: 0 } : { metric: 'allclose', atol: 1e-3, rtol: 0 };
        results.push(compareTensor(`timesteps_${n}`, schedule.timesteps, refT, tTol, [schedule.timesteps.length]));
        const sigTol = toleranceFor(c.spec, `sigmas_${n}`) ?? { metric: 'allclose', atol: 1e-6, rtol: 1e-5 };
        results.push(compareTensor(`sigmas_${n}`, schedule.sigmas, ioTensor(c, `sigmas_${n}`), sigTol, [schedule.sigmas.length]));

        // 2. Trajectories.
        const refSamples = ioTensor(c, `samples_${n}`);
        const samplesTol = toleranceFor(c.spec, `samples_${n}`) ?? DEFAULT_SAMPLES_TOL;
        const outputsHost = c.io.get(`model_outputs_${n}`);
        if (outputsHost) {
          const outputs = toFloat32(outputsHost, `model_outputs_${n}`);
          const per = outputs.length / n;
          const recorded: VelocityFn = (_x, step) => tf.tensor(outputs.subarray(step.index * per, (step.index + 1) * per), xInitHost.shape, 'float32');
          results.push(compareTensor(`samples_${n}[open loop]`, trajectory(sampler, recorded, xInit, schedule), refSamples, samplesTol, refSamples.shape));
        }
        if (fake) {
          results.push(compareTensor(`samples_${n}[closed loop]`, trajectory(sampler, fakeModel(fake, xInit), xInit, schedule), refSamples, samplesTol, refSamples.shape));
        }
      }
    } finally {
      xInit.dispose();
    }
    return results;
  },
};
