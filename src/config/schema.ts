/**
 * A small validation library for YAML/JSON run configs: each schema turns an untyped value into a
 * typed one or records what was wrong at which field path. Unknown keys are errors, defaults fill
 * absent fields, and every problem of a file is reported in one `ConfigError` naming the file, the
 * field path (`optimizer.betas[1]`) and what was expected.
 */

/** One problem at one field. */
export interface ConfigIssue {
  /** Dotted path (`train.lr`, `validation.prompts[2]`); '' for the document itself. */
  path: string;
  /** What was expected (`a number >= 0`, `one of adamw, came`, `no such key`). */
  expected: string;
  /** Short rendering of what was found. */
  got: string;
}

export class ConfigError extends Error {
  constructor(
    /** File (or source such as `--set`) the config came from. */
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    const lines = issues.map((i) => `  ${i.path || '(top level)'}: expected ${i.expected}, got ${i.got}`);
    super(`${source}: invalid config (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Renders a found value for an error message (short, type-revealing). */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return `a mapping with keys ${Object.keys(v as object).slice(0, 8).join(', ') || '(none)'}`;
  return typeof v;
}

export interface Ctx {
  path: string;
  issues: ConfigIssue[];
}

function at(ctx: Ctx, key: string | number): Ctx {
  const path = typeof key === 'number' ? `${ctx.path}[${key}]` : ctx.path ? `${ctx.path}.${key}` : key;
  return { path, issues: ctx.issues };
}

function fail(ctx: Ctx, expected: string, got: unknown): undefined {
  ctx.issues.push({ path: ctx.path, expected, got: show(got) });
  return undefined;
}

/** A validator for values of type T. `parse` returns undefined after recording an issue. */
export interface Schema<T> {
  /** What a valid value looks like (used in messages and generated docs). */
  readonly description: string;
  parse(value: unknown, ctx: Ctx): T | undefined;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

function schema<T>(description: string, parse: (v: unknown, ctx: Ctx) => T | undefined): Schema<T> {
  return { description, parse };
}

export interface NumberOptions {
  min?: number;
  max?: number;
  /** Exclusive lower bound. */
  gt?: number;
  integer?: boolean;
}

/** A finite number (YAML `1e-4` and `1.0e-4` both parse as numbers). */
export function number(opts: NumberOptions = {}): Schema<number> {
  const parts = [opts.integer ? 'an integer' : 'a number'];
  if (opts.min !== undefined) parts.push(`>= ${opts.min}`);
  if (opts.gt !== undefined) parts.push(`> ${opts.gt}`);
  if (opts.max !== undefined) parts.push(`<= ${opts.max}`);
  const description = parts.join(' ');
  return schema(description, (v, ctx) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail(ctx, description, v);
    if (opts.integer && !Number.isInteger(v)) return fail(ctx, description, v);
    if (opts.min !== undefined && v < opts.min) return fail(ctx, description, v);
    if (opts.gt !== undefined && !(v > opts.gt)) return fail(ctx, description, v);
    if (opts.max !== undefined && v > opts.max) return fail(ctx, description, v);
    return v;
  });
}

export function integer(opts: Omit<NumberOptions, 'integer'> = {}): Schema<number> {
  return number({ ...opts, integer: true });
}

export function string(opts: { nonEmpty?: boolean } = {}): Schema<string> {
  const description = opts.nonEmpty ? 'a non-empty string' : 'a string';
  return schema(description, (v, ctx) => (typeof v === 'string' && (!opts.nonEmpty || v.length > 0) ? v : fail(ctx, description, v)));
}

export function boolean(): Schema<boolean> {
  return schema('true or false', (v, ctx) => (typeof v === 'boolean' ? v : fail(ctx, 'true or false', v)));
}

/** One of a fixed set of strings. */
export function oneOf<const T extends readonly string[]>(values: T): Schema<T[number]> {
  const description = `one of ${values.join(', ')}`;
  return schema(description, (v, ctx) => (typeof v === 'string' && values.includes(v) ? (v as T[number]) : fail(ctx, description, v)));
}

export function array<T>(item: Schema<T>, opts: { minLength?: number; length?: number } = {}): Schema<T[]> {
  const size = opts.length !== undefined ? ` of exactly ${opts.length}` : opts.minLength ? ` of at least ${opts.minLength}` : '';
  const description = `a list${size} of ${item.description}`;
  return schema(description, (v, ctx) => {
    if (!Array.isArray(v)) return fail(ctx, description, v);
    if (opts.length !== undefined && v.length !== opts.length) return fail(ctx, description, v);
    if (opts.minLength !== undefined && v.length < opts.minLength) return fail(ctx, description, v);
    const before = ctx.issues.length;
    const out = v.map((x, i) => item.parse(x, at(ctx, i)));
    return ctx.issues.length === before ? (out as T[]) : undefined;
  });
}

/** A fixed-length list of numbers (betas, eps pairs). */
export function tuple<T extends number[]>(length: number, item: Schema<number> = number()): Schema<T> {
  return array(item, { length }) as unknown as Schema<T>;
}

/** null, or a value of `inner`. */
export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return schema(`null or ${inner.description}`, (v, ctx) => (v === null ? null : inner.parse(v, ctx)));
}

/** Either of two schemas (tried in order; the issues of the last attempt are reported). */
export function union<A, B>(a: Schema<A>, b: Schema<B>): Schema<A | B> {
  const description = `${a.description}, or ${b.description}`;
  return schema(description, (v, ctx) => {
    const trial: Ctx = { path: ctx.path, issues: [] };
    const first = a.parse(v, trial);
    if (trial.issues.length === 0) return first;
    const second: Ctx = { path: ctx.path, issues: [] };
    const out = b.parse(v, second);
    return second.issues.length === 0 ? out : fail(ctx, description, v);
  });
}

/** A mapping with free keys and values of one schema (e.g. model config overrides). */
export function record<T>(value: Schema<T>): Schema<Record<string, T>> {
  const description = `a mapping of ${value.description}`;
  return schema(description, (v, ctx) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(ctx, description, v);
    const out: Record<string, T> = {};
    const before = ctx.issues.length;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = value.parse(x, at(ctx, k)) as T;
    return ctx.issues.length === before ? out : undefined;
  });
}

/** Any JSON-like value, passed through for a later, more specific validation (model overrides). */
export function any(): Schema<unknown> {
  return schema('any value', (v) => v);
}

/** A field of an object: its schema and, when it may be left out, the default. */
export interface Field<T> {
  schema: Schema<T>;
  /** Absent => this value (a function for fresh objects). Undefined => the field is required. */
  default?: T | (() => T);
  doc?: string;
}

/** A required field. */
export function required<T>(s: Schema<T>, doc?: string): Field<T> {
  return { schema: s, doc };
}

/** An optional field with a default. */
export function withDefault<T>(s: Schema<T>, dflt: T | (() => T), doc?: string): Field<T> {
  return { schema: s, default: dflt, doc };
}

type Shape = Record<string, Field<any>>;
export type ObjectOf<S extends Shape> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

export interface ObjectSchema<S extends Shape> extends Schema<ObjectOf<S>> {
  readonly shape: S;
}

/** A mapping with known keys; unknown keys are errors (with a "did you mean" hint). */
export function object<S extends Shape>(shape: S, description = 'a mapping'): ObjectSchema<S> {
  const keys = Object.keys(shape);
  return {
    shape,
    description,
    parse(v, ctx) {
      const input = v === undefined || v === null ? {} : v;
      if (typeof input !== 'object' || Array.isArray(input)) return fail(ctx, description, v);
      const before = ctx.issues.length;
      const obj = input as Record<string, unknown>;
      for (const k of Object.keys(obj)) {
        if (!(k in shape)) {
          const hint = closest(k, keys);
          ctx.issues.push({ path: at(ctx, k).path, expected: `no such key${hint ? ` (did you mean "${hint}"?)` : ''}; allowed: ${keys.join(', ')}`, got: show(obj[k]) });
        }
      }
      const out: Record<string, unknown> = {};
      for (const [k, field] of Object.entries(shape)) {
        if (obj[k] === undefined) {
          if (field.default === undefined) fail(at(ctx, k), `${field.schema.description} (required)`, undefined);
          else out[k] = typeof field.default === 'function' ? (field.default as () => unknown)() : structuredClone(field.default);
          continue;
        }
        out[k] = field.schema.parse(obj[k], at(ctx, k));
      }
      return ctx.issues.length === before ? (out as ObjectOf<S>) : undefined;
    },
  };
}

/** Edit distance for "did you mean" hints on misspelt keys. */
function closest(word: string, candidates: string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** Validates `value` against `s`; throws one ConfigError listing every issue. */
export function validate<T>(s: Schema<T>, value: unknown, source: string): T {
  const ctx: Ctx = { path: '', issues: [] };
  const out = s.parse(value, ctx);
  if (ctx.issues.length || out === undefined) throw new ConfigError(source, ctx.issues.length ? ctx.issues : [{ path: '', expected: s.description, got: show(value) }]);
  return out;
}

/**
 * Adds cross-field checks to a schema: `check` receives the parsed value and reports problems with
 * `issue(path, expected, got)`; paths are relative to the value.
 */
export function refine<T>(inner: Schema<T>, check: (value: T, issue: (path: string, expected: string, got: unknown) => void) => void): Schema<T> {
  return schema(inner.description, (v, ctx) => {
    const out = inner.parse(v, ctx);
    if (out === undefined) return undefined;
    const before = ctx.issues.length;
    check(out, (path, expected, got) => fail(at(ctx, path), expected, got));
    return ctx.issues.length === before ? out : undefined;
  });
}
