/**
 * Typed scheduler configs read from a diffusers `scheduler_config.json` object.
 *
 * Mirrors the constructor arguments of diffusers' `DPMSolverMultistepScheduler`
 * (schedulers/scheduling_dpmsolver_multistep.py) and `FlowMatchEulerDiscreteScheduler`
 * (schedulers/scheduling_flow_match_euler_discrete.py): field names and defaults are the reference's.
 * Only flow-matching set-ups are accepted (SANA is a flow model); a setting the reference supports but
 * this project does not is an error naming the field, never silently ignored. Keys this parser does not
 * know are returned in `ignored` (the reference also ignores them), so newer configs still load.
 *
 * The file itself is read elsewhere (`io/pretrained/scheduler.ts`): schedulers stay free of I/O.
 */

export interface FlowDpmSolverConfig {
  _class_name: 'DPMSolverMultistepScheduler';
  num_train_timesteps: number;
  /** Shift k of the flow sigmas: s' = k s / (1 + (k - 1) s). */
  flow_shift: number;
  solver_order: 1 | 2 | 3;
  solver_type: 'midpoint' | 'heun';
  algorithm_type: 'dpmsolver++';
  prediction_type: 'flow_prediction';
  use_flow_sigmas: true;
  lower_order_final: boolean;
  euler_at_final: boolean;
  final_sigmas_type: 'zero' | 'sigma_min';
  /** Only used for `final_sigmas_type: sigma_min` (the first beta of the discrete schedule). */
  beta_start: number;
  beta_end: number;
  beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  trained_betas: number[] | null;
  rescale_betas_zero_snr: boolean;
  /** With dynamic shifting the caller passes `mu` and the shift becomes exp(mu). */
  use_dynamic_shifting: boolean;
  time_shift_type: 'exponential';
}

export interface FlowEulerConfig {
  _class_name: 'FlowMatchEulerDiscreteScheduler';
  num_train_timesteps: number;
  shift: number;
  use_dynamic_shifting: boolean;
  base_shift: number | null;
  max_shift: number | null;
  base_image_seq_len: number;
  max_image_seq_len: number;
  invert_sigmas: boolean;
  shift_terminal: number | null;
  time_shift_type: 'exponential' | 'linear';
}

export type FlowSchedulerConfig = FlowDpmSolverConfig | FlowEulerConfig;

export interface ParsedSchedulerConfig<C> {
  config: C;
  /** Keys present in the file that this parser does not interpret (the reference ignores them too). */
  ignored: string[];
}

type Raw = Record<string, unknown>;

/** Reads one field with its default, checking the type; errors name the source and the field. */
class FieldReader {
  readonly seen = new Set<string>();
  constructor(private readonly raw: Raw, private readonly source: string) {}

  private get(key: string): unknown {
    this.seen.add(key);
    return this.raw[key];
  }

  fail(key: string, expected: string): never {
    throw new Error(`${this.source}: field "${key}" is ${JSON.stringify(this.raw[key])}; expected ${expected}`);
  }

  number(key: string, def: number, check: (v: number) => boolean = Number.isFinite, expected = 'a finite number'): number {
    const v = this.get(key);
    if (v === undefined) return def;
    if (typeof v !== 'number' || !check(v)) this.fail(key, expected);
    return v as number;
  }

  int(key: string, def: number, min: number): number {
    return this.number(key, def, (v) => Number.isInteger(v) && v >= min, `an integer >= ${min}`);
  }

  nullableNumber(key: string, def: number | null): number | null {
    const v = this.get(key);
    if (v === undefined) return def;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a finite number or null');
    return v as number;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v as boolean;
  }

  choice<T extends string | number | null>(key: string, def: T, allowed: readonly T[]): T {
    const v = this.get(key);
    if (v === undefined) return def;
    if (!allowed.includes(v as T)) this.fail(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    return v as T;
  }

  /** A field whose only supported value is `want` (the reference allows more; this project does not). */
  only<T>(key: string, def: T, want: T, why: string): void {
    const v = this.get(key);
    const value = v === undefined ? def : v;
    if (value !== want) throw new Error(`${this.source}: field "${key}" is ${JSON.stringify(value)}; only ${JSON.stringify(want)} is supported (${why})`);
  }

  /** Known keys the schedule never depends on in the supported set-up. */
  accept(...keys: string[]): void {
    for (const k of keys) this.seen.add(k);
  }

  ignored(): string[] {
    return Object.keys(this.raw).filter((k) => !k.startsWith('_') && !this.seen.has(k));
  }
}

function asObject(json: unknown, source: string): Raw {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  return json as Raw;
}

const positive = (v: number) => Number.isFinite(v) && v > 0;

/**
 * The sampler a flow-matching training run samples with (its validation images and `sana sample` of its
 * checkpoints): SANA's Flow-DPM-Solver (dpmsolver++, order 2) with the run's shift and step count.
 */
export function flowDpmSolverForRun(flow: { flow_shift: number; num_train_timesteps: number }, source: string): FlowDpmSolverConfig {
  return parseFlowDpmSolverConfig({
    _class_name: 'DPMSolverMultistepScheduler',
    num_train_timesteps: flow.num_train_timesteps,
    flow_shift: flow.flow_shift,
    use_flow_sigmas: true,
    prediction_type: 'flow_prediction',
    algorithm_type: 'dpmsolver++',
    solver_order: 2,
  }, source).config;
}

/** Parses a `DPMSolverMultistepScheduler` config set up for flow matching (as SANA's pipelines are). */
export function parseFlowDpmSolverConfig(json: unknown, source = 'scheduler_config.json'): ParsedSchedulerConfig<FlowDpmSolverConfig> {
  const raw = asObject(json, source);
  const r = new FieldReader(raw, source);
  const flowOnly = 'this project samples flow-matching models only';
  r.only('use_flow_sigmas', false, true, flowOnly);
  r.only('prediction_type', 'epsilon', 'flow_prediction', flowOnly);
  r.only('algorithm_type', 'dpmsolver++', 'dpmsolver++', 'the deterministic data-prediction solver; the reference rejects "dpmsolver" with flow_prediction and the SDE variants need noise');
  r.only('thresholding', false, false, 'dynamic thresholding of x0 is not implemented');
  r.only('variance_type', null, null, 'learned variance does not apply to flow models');
  for (const k of ['use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas']) {
    r.only(k, false, false, 'it replaces the flow sigmas');
  }
  const config: FlowDpmSolverConfig = {
    _class_name: 'DPMSolverMultistepScheduler',
    num_train_timesteps: r.int('num_train_timesteps', 1000, 1),
    flow_shift: r.number('flow_shift', 1.0, positive, 'a number > 0'),
    solver_order: r.choice<number>('solver_order', 2, [1, 2, 3]) as 1 | 2 | 3,
    solver_type: r.choice('solver_type', 'midpoint', ['midpoint', 'heun'] as const),
    algorithm_type: 'dpmsolver++',
    prediction_type: 'flow_prediction',
    use_flow_sigmas: true,
    lower_order_final: r.bool('lower_order_final', true),
    euler_at_final: r.bool('euler_at_final', false),
    final_sigmas_type: r.choice('final_sigmas_type', 'zero', ['zero', 'sigma_min'] as const),
    beta_start: r.number('beta_start', 0.0001),
    beta_end: r.number('beta_end', 0.02),
    beta_schedule: r.choice('beta_schedule', 'linear', ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const),
    trained_betas: null,
    rescale_betas_zero_snr: r.bool('rescale_betas_zero_snr', false),
    use_dynamic_shifting: r.bool('use_dynamic_shifting', false),
    time_shift_type: r.choice('time_shift_type', 'exponential', ['exponential'] as const),
  };
  const betas = raw.trained_betas;
  r.accept('trained_betas');
  if (betas !== undefined && betas !== null) {
    if (!Array.isArray(betas) || betas.length === 0 || betas.some((b) => typeof b !== 'number')) r.fail('trained_betas', 'a list of numbers or null');
    config.trained_betas = betas as number[];
  }
  if (config.final_sigmas_type === 'sigma_min' && config.rescale_betas_zero_snr) {
    throw new Error(`${source}: final_sigmas_type "sigma_min" with rescale_betas_zero_snr is not supported`);
  }
  // Fields that shape the discrete (non-flow) schedule only; with flow sigmas they have no effect.
  r.accept('lambda_min_clipped', 'timestep_spacing', 'steps_offset', 'dynamic_thresholding_ratio', 'sample_max_value');
  return { config, ignored: r.ignored() };
}

/** Parses a `FlowMatchEulerDiscreteScheduler` config. */
export function parseFlowEulerConfig(json: unknown, source = 'scheduler_config.json'): ParsedSchedulerConfig<FlowEulerConfig> {
  const raw = asObject(json, source);
  const r = new FieldReader(raw, source);
  for (const k of ['use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas']) {
    r.only(k, false, false, 'it replaces the shifted flow sigmas');
  }
  r.only('stochastic_sampling', false, false, 'only the deterministic Euler step is implemented');
  const config: FlowEulerConfig = {
    _class_name: 'FlowMatchEulerDiscreteScheduler',
    num_train_timesteps: r.int('num_train_timesteps', 1000, 1),
    shift: r.number('shift', 1.0, positive, 'a number > 0'),
    use_dynamic_shifting: r.bool('use_dynamic_shifting', false),
    base_shift: r.nullableNumber('base_shift', 0.5),
    max_shift: r.nullableNumber('max_shift', 1.15),
    base_image_seq_len: r.int('base_image_seq_len', 256, 1),
    max_image_seq_len: r.int('max_image_seq_len', 4096, 1),
    invert_sigmas: r.bool('invert_sigmas', false),
    shift_terminal: r.nullableNumber('shift_terminal', null),
    time_shift_type: r.choice('time_shift_type', 'exponential', ['exponential', 'linear'] as const),
  };
  if (config.shift_terminal !== null && config.shift_terminal >= 1) r.fail('shift_terminal', 'a number < 1 or null');
  return { config, ignored: r.ignored() };
}

/** Dispatches on `_class_name`. */
export function parseFlowSchedulerConfig(json: unknown, source = 'scheduler_config.json'): ParsedSchedulerConfig<FlowSchedulerConfig> {
  const cls = asObject(json, source)._class_name;
  if (cls === 'DPMSolverMultistepScheduler') return parseFlowDpmSolverConfig(json, source);
  if (cls === 'FlowMatchEulerDiscreteScheduler') return parseFlowEulerConfig(json, source);
  throw new Error(`${source}: _class_name is ${JSON.stringify(cls)}; expected "DPMSolverMultistepScheduler" or "FlowMatchEulerDiscreteScheduler"`);
}

/**
 * The Euler config SANA's convert script builds for `--scheduler flow-euler`
 * (`FlowMatchEulerDiscreteScheduler(shift=flow_shift)`), from a DPM-Solver config.
 */
export function flowEulerConfigFrom(dpm: FlowDpmSolverConfig): FlowEulerConfig {
  return parseFlowEulerConfig({ _class_name: 'FlowMatchEulerDiscreteScheduler', num_train_timesteps: dpm.num_train_timesteps, shift: dpm.flow_shift }).config;
}

/** The DPM-Solver config SANA's pipelines use (`DPMSolverMultistepScheduler(flow_shift, use_flow_sigmas, flow_prediction)`). */
export function flowDpmSolverConfigFrom(euler: FlowEulerConfig): FlowDpmSolverConfig {
  return parseFlowDpmSolverConfig({
    num_train_timesteps: euler.num_train_timesteps,
    flow_shift: euler.shift,
    use_flow_sigmas: true,
    prediction_type: 'flow_prediction',
  }).config;
}
