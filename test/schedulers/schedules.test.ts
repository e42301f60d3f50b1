/**
 * Flow schedules and scheduler configs: parity with diffusers (shared golden cases and the extra cases
 * made by scripts/fixtures/make_scheduler_cases.py), NumPy linspace semantics, config validation.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCase } from '../../src/golden/case';
import { schedulersRunner } from '../../src/golden/runners/schedulers';
import { readSchedulerConfig } from '../../src/io/pretrained/scheduler';
import {
  flowDpmSolverConfigFrom,
  flowDpmSolverSchedule,
  flowEulerConfigFrom,
  flowEulerSchedule,
  linspace,
  parseFlowDpmSolverConfig,
  parseFlowEulerConfig,
  parseFlowSchedulerConfig,
  shiftSigma,
} from '../../src/schedulers';
import { goldenCase, useTestBackend } from '../helpers';

const FIXTURES = path.join(__dirname, 'fixtures');
const extraCases = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'case.json')));

beforeAll(useTestBackend);

async function expectCasePasses(dir: string): Promise<void> {
  const results = await schedulersRunner.run(loadCase(dir));
  const bad = results.filter((r) => !r.ok).map((r) => `${r.tensor}: max_abs ${r.maxAbs} allowed ${r.allowed} ${r.note ?? ''}`);
  expect(bad).toEqual([]);
  // Schedules, open loop and closed loop are all compared.
  expect(results.some((r) => r.tensor.endsWith('[open loop]'))).toBe(true);
  expect(results.some((r) => r.tensor.endsWith('[closed loop]'))).toBe(true);
}

describe('golden parity', () => {
  test.each(['flow_dpm_solver', 'flow_euler'])('shared case %s', async (name) => {
    await expectCasePasses(goldenCase(name));
  });
  test.each(extraCases)('extra diffusers case %s', async (name) => {
    await expectCasePasses(path.join(FIXTURES, name));
  });
});

describe('linspace', () => {
  test('follows numpy: start + i * step, exact end point, num = 1', () => {
    const xs = linspace(1, 0.001, 5);
    const step = (0.001 - 1) / 4;
    expect(xs).toEqual([1, 1 + step, 2 * step + 1, 3 * step + 1, 0.001]);
    expect(linspace(3, 7, 1)).toEqual([3]);
    expect(() => linspace(0, 1, 0)).toThrow(/num must be an integer >= 1/);
  });
});

describe('flow DPM-Solver schedule', () => {
  const config = parseFlowDpmSolverConfig({ flow_shift: 3.0, use_flow_sigmas: true, prediction_type: 'flow_prediction' }).config;

  test('N steps: N truncated integer timesteps, N+1 decreasing sigmas ending at 0', () => {
    const s = flowDpmSolverSchedule(config, 20);
    expect(s.timesteps).toHaveLength(20);
    expect(s.sigmas).toHaveLength(21);
    expect(s.timesteps.slice(0, 3)).toEqual([999, 982, 963]);
    expect(s.sigmas[20]).toBe(0);
    for (let i = 0; i < 20; i++) {
      expect(Number.isInteger(s.timesteps[i])).toBe(true);
      expect(s.sigmas[i + 1]).toBeLessThan(s.sigmas[i]);
      expect(Math.fround(s.sigmas[i])).toBe(s.sigmas[i]);
    }
  });

  test('shift 1 gives the unshifted linear sigmas', () => {
    const flat = parseFlowDpmSolverConfig({ flow_shift: 1.0, use_flow_sigmas: true, prediction_type: 'flow_prediction' }).config;
    const s = flowDpmSolverSchedule(flat, 4);
    expect(s.sigmas.slice(0, 4)).toEqual([0.999, 0.74925, 0.4995, 0.24975].map(Math.fround));
  });

  test('shiftSigma keeps the ends and pushes the middle up', () => {
    expect(shiftSigma(0, 3)).toBe(0);
    expect(shiftSigma(1, 3)).toBe(1);
    expect(shiftSigma(0.5, 3)).toBeCloseTo(0.75, 12);
  });

  test('bad step counts and mu without dynamic shifting are errors', () => {
    expect(() => flowDpmSolverSchedule(config, 0)).toThrow(/integer >= 1, got 0/);
    expect(() => flowDpmSolverSchedule(config, 2.5)).toThrow(/integer >= 1/);
    expect(() => flowDpmSolverSchedule(config, 4, { mu: 1 })).toThrow(/use_dynamic_shifting/);
  });
});

describe('flow Euler schedule', () => {
  test('shifts twice: the last sigma is shift(shift(1/1000)) in float32', () => {
    const config = parseFlowEulerConfig({ shift: 3.0 }).config;
    const s = flowEulerSchedule(config, 28);
    const f = Math.fround;
    const once = f(f(3 * f(0.001)) / f(1 + f(2 * f(0.001))));
    expect(s.sigmas[0]).toBe(1);
    expect(s.timesteps[0]).toBe(1000);
    expect(s.sigmas[27]).toBeCloseTo(shiftSigma(once, 3), 7);
    expect(s.sigmas[28]).toBe(0);
  });

  test('dynamic shifting needs mu', () => {
    const config = parseFlowEulerConfig({ shift: 1.0, use_dynamic_shifting: true }).config;
    expect(() => flowEulerSchedule(config, 4)).toThrow(/needs mu/);
    const s = flowEulerSchedule(config, 4, { mu: Math.log(3) });
    // exp(mu) / (exp(mu) + 1/t - 1) is the static shift with k = exp(mu), applied once to the unshifted table.
    const base = linspace(1000, Math.fround(0.001) * 1000, 4).map((t) => t / 1000);
    base.forEach((t, i) => expect(s.sigmas[i]).toBeCloseTo(shiftSigma(t, 3), 6));
  });
});

describe('scheduler configs', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-sched-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('reads the reference scheduler_config.json with -Infinity, from the file or its folder', () => {
    const file = path.join(goldenCase('sana_pipeline_tiny'), 'scheduler', 'scheduler_config.json');
    for (const where of [file, path.dirname(file)]) {
      const { config, ignored } = readSchedulerConfig(where);
      expect(config._class_name).toBe('DPMSolverMultistepScheduler');
      if (config._class_name !== 'DPMSolverMultistepScheduler') return;
      expect(config.flow_shift).toBe(3);
      expect(config.solver_order).toBe(2);
      expect(ignored).toEqual([]);
    }
  });

  test('unknown class, wrong types and unsupported settings name the file and field', () => {
    expect(() => parseFlowSchedulerConfig({ _class_name: 'DDIMScheduler' }, 'x/scheduler_config.json')).toThrow(
      /x\/scheduler_config.json: _class_name is "DDIMScheduler"; expected "DPMSolverMultistepScheduler" or "FlowMatchEulerDiscreteScheduler"/,
    );
    const base = { _class_name: 'DPMSolverMultistepScheduler', use_flow_sigmas: true, prediction_type: 'flow_prediction' };
    expect(() => parseFlowSchedulerConfig({ ...base, flow_shift: 'three' }, 'f.json')).toThrow(/f.json: field "flow_shift" is "three"; expected a number > 0/);
    expect(() => parseFlowSchedulerConfig({ ...base, solver_order: 4 }, 'f.json')).toThrow(/field "solver_order" is 4; expected one of 1, 2, 3/);
    expect(() => parseFlowSchedulerConfig({ ...base, use_flow_sigmas: false }, 'f.json')).toThrow(/field "use_flow_sigmas" is false; only true is supported/);
    expect(() => parseFlowSchedulerConfig({ ...base, prediction_type: 'epsilon' }, 'f.json')).toThrow(/field "prediction_type"/);
    expect(() => parseFlowSchedulerConfig({ ...base, algorithm_type: 'sde-dpmsolver++' }, 'f.json')).toThrow(/field "algorithm_type"/);
    expect(() => parseFlowSchedulerConfig({ ...base, use_karras_sigmas: true }, 'f.json')).toThrow(/field "use_karras_sigmas"/);
    expect(() => parseFlowSchedulerConfig({ _class_name: 'FlowMatchEulerDiscreteScheduler', stochastic_sampling: true }, 'f.json')).toThrow(/stochastic_sampling/);
    expect(() => parseFlowSchedulerConfig([], 'f.json')).toThrow(/f.json: expected a JSON object/);
  });

  test('keys from other diffusers versions are reported, not fatal', () => {
    const { ignored } = parseFlowSchedulerConfig({ _class_name: 'FlowMatchEulerDiscreteScheduler', shift: 3, some_future_flag: 1, _diffusers_version: 'x' });
    expect(ignored).toEqual(['some_future_flag']);
  });

  test('an unreadable or invalid file is a clear error', () => {
    expect(() => readSchedulerConfig(path.join(tmp, 'nope.json'))).toThrow(/nope.json: cannot read/);
    const bad = path.join(tmp, 'bad.json');
    fs.writeFileSync(bad, '{"_class_name": ');
    expect(() => readSchedulerConfig(bad)).toThrow(/bad.json: invalid JSON/);
  });

  test('DPM-Solver and Euler configs convert into each other with the same shift', () => {
    const dpm = parseFlowDpmSolverConfig({ flow_shift: 4.5, use_flow_sigmas: true, prediction_type: 'flow_prediction' }).config;
    const euler = flowEulerConfigFrom(dpm);
    expect(euler.shift).toBe(4.5);
    expect(flowDpmSolverConfigFrom(euler).flow_shift).toBe(4.5);
  });
});
