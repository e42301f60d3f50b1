/**
 * Modules with named parameters, in the spirit of `torch.nn.Module`: a tree of modules whose
 * parameters are addressed by the dotted key the reference checkpoint uses
 * (`transformer_blocks.0.attn1.to_q.weight`). Each parameter carries its PyTorch shape and layout tag;
 * in memory it is a float32 `tf.Variable` in TF layout.
 *
 * Parameters are created lazily: a model can be built and counted without allocating anything, and
 * weights are allocated only by `initialize` (seeded, per-key streams) or by `loadStateDict`
 * (streamed one tensor at a time from a checkpoint, so two copies of a large model never coexist).
 */
import { tf, Tensor, Variable } from '../backend';
import { Layout, tfShapeOf, torchToTfHost, tfToTorch } from './layout';
import { Init, initialValues } from './init';

let nextVariableId = 0;

/** One learnable (or frozen) tensor. */
export class Parameter {
  private variable: Variable | null = null;

  constructor(
    /** Shape in the checkpoint (PyTorch layout). */
    readonly torchShape: readonly number[],
    readonly layout: Layout,
    readonly init: Init,
    public trainable = true,
  ) {}

  /** Shape in memory (TF layout). */
  get shape(): number[] {
    return tfShapeOf(this.layout, this.torchShape);
  }

  get size(): number {
    return this.torchShape.reduce((a, b) => a * b, 1);
  }

  get isMaterialized(): boolean {
    return this.variable !== null;
  }

  /** The variable; throws if the parameter was neither initialised nor loaded. */
  get value(): Variable {
    if (!this.variable) throw new Error('parameter used before initialize() or loadStateDict()');
    return this.variable;
  }

  /** Replaces the value with `t` (TF layout, right shape); takes ownership of nothing (t is copied). */
  assign(t: Tensor): void {
    const want = this.shape;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new Error(`parameter assign: shape [${t.shape}] does not match [${want}]`);
    }
    // The cast (when one is needed) is released here: a leftover reference would keep the weight's
    // memory alive after dispose().
    const value = t.dtype === 'float32' ? t : t.toFloat();
    if (this.variable) {
      this.variable.assign(value);
    } else {
      this.variable = tf.variable(value, this.trainable, `p${nextVariableId++}`);
    }
    if (value !== t) value.dispose();
  }

  /** Sets the value from host data in TF layout. */
  assignHost(data: Float32Array): void {
    const t = tf.tensor(data, this.shape, 'float32');
    this.assign(t);
    t.dispose();
  }

  dispose(): void {
    this.variable?.dispose();
    this.variable = null;
  }
}

/** Where `loadStateDict` reads tensors from: a checkpoint file, a shard set or an in-memory map. */
export interface TensorSource {
  keys(): string[];
  info(key: string): { shape: readonly number[] };
  readFloat32(key: string): Float32Array;
}

/** An in-memory TensorSource (PyTorch layouts). */
export function mapSource(map: Map<string, { shape: readonly number[]; data: Float32Array }>): TensorSource {
  return {
    keys: () => [...map.keys()],
    info: (k) => ({ shape: map.get(k)!.shape }),
    readFloat32: (k) => map.get(k)!.data,
  };
}

export class StateDictError extends Error {
  constructor(
    readonly source: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly misshaped: Array<{ key: string; expected: readonly number[]; got: readonly number[] }>,
  ) {
    const parts: string[] = [];
    const list = (xs: string[]) => xs.slice(0, 50).join(', ') + (xs.length > 50 ? `, ... (${xs.length} in all)` : '');
    if (missing.length) parts.push(`missing keys (${missing.length}): ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected keys (${unexpected.length}): ${list(unexpected)}`);
    if (misshaped.length) {
      parts.push(`shape mismatches (${misshaped.length}): ${misshaped.slice(0, 50).map((m) => `${m.key} expected [${m.expected}] got [${m.got}]`).join(', ')}`);
    }
    super(`${source}: checkpoint does not fit the model: ${parts.join('; ')}`);
    this.name = 'StateDictError';
  }
}

export interface LoadOptions {
  /** Name of the source in error messages (file or folder). */
  sourceName?: string;
  /** Key prefix in the source to strip (e.g. `model.`). */
  prefix?: string;
  /** Source keys to ignore silently (e.g. `num_batches_tracked` buffers). */
  ignore?: RegExp[];
  /** When false, missing and unexpected keys are allowed (shapes are still checked). Default true. */
  strict?: boolean;
}

export abstract class Module {
  private readonly paramsByName = new Map<string, Parameter>();
  private readonly childrenByName = new Map<string, Module>();

  /** Declares a parameter under `name` with its PyTorch shape. */
  protected param(name: string, torchShape: number[], init: Init, layout: Layout = 'identity'): Parameter {
    if (this.paramsByName.has(name) || this.childrenByName.has(name)) throw new Error(`duplicate parameter name "${name}"`);
    const p = new Parameter(torchShape, layout, init);
    this.paramsByName.set(name, p);
    return p;
  }

  /** Declares a frozen tensor that lives in the checkpoint (e.g. BatchNorm running statistics). */
  protected buffer(name: string, torchShape: number[], init: Init): Parameter {
    const p = this.param(name, torchShape, init);
    p.trainable = false;
    return p;
  }

  /** Registers a child module under `name`. */
  protected module<M extends Module>(name: string, m: M): M {
    if (this.paramsByName.has(name) || this.childrenByName.has(name)) throw new Error(`duplicate module name "${name}"`);
    this.childrenByName.set(name, m);
    return m;
  }

  /** Registers a list of children as `name.0`, `name.1`, ... (like `nn.ModuleList`). */
  protected moduleList<M extends Module>(name: string, ms: M[]): M[] {
    const list = new ModuleList(ms);
    this.module(name, list);
    return ms;
  }

  /** Replaces a registered child (used to wrap layers, e.g. with LoRA). */
  replaceChild(name: string, m: Module): void {
    if (!this.childrenByName.has(name)) throw new Error(`no child module "${name}"`);
    this.childrenByName.set(name, m);
  }

  children(): Array<[string, Module]> {
    return [...this.childrenByName.entries()];
  }

  /** Every module in the tree with its dotted path ('' for this one). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [name, child] of this.childrenByName) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Every parameter with its checkpoint key, in declaration order. */
  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [name, p] of this.paramsByName) out.push([prefix ? `${prefix}.${name}` : name, p]);
    for (const [name, child] of this.childrenByName) out.push(...child.namedParameters(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Trainable parameters with their keys. */
  trainableParameters(): Array<[string, Parameter]> {
    return this.namedParameters().filter(([, p]) => p.trainable);
  }

  /** Parameter count from shapes alone (nothing is allocated). */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Marks every parameter trainable or frozen. */
  setTrainable(trainable: boolean): this {
    for (const p of this.parameters()) p.trainable = trainable;
    return this;
  }

  /**
   * Allocates every parameter not yet materialised with its declared initialiser, drawing from the
   * stream `init/<key>` of `seed`: the same key always gets the same values, whatever else the model holds.
   */
  initialize(seed: number): this {
    for (const [key, p] of this.namedParameters()) {
      if (!p.isMaterialized) p.assignHost(initialValues(p.init, p.torchShape, p.layout, seed, key));
    }
    return this;
  }

  /**
   * Strict load from a checkpoint in PyTorch layout: all missing, unexpected and mis-shaped keys are
   * collected and reported in one `StateDictError` before any weight is touched.
   */
  loadStateDict(source: TensorSource, opts: LoadOptions = {}): this {
    const { prefix = '', ignore = [], strict = true, sourceName = 'checkpoint' } = opts;
    const params = new Map(this.namedParameters());
    const sourceKeys = source.keys().filter((k) => k.startsWith(prefix) && !ignore.some((re) => re.test(k)));
    const present = new Set(sourceKeys.map((k) => k.slice(prefix.length)));
    const missing = [...params.keys()].filter((k) => !present.has(k));
    const unexpected = [...present].filter((k) => !params.has(k));
    const misshaped: StateDictError['misshaped'] = [];
    for (const [key, p] of params) {
      if (!present.has(key)) continue;
      const got = source.info(prefix + key).shape;
      // 0-d and 1-element tensors are interchangeable (some checkpoints store scalars as [1]).
      const same = got.length === p.torchShape.length ? got.every((d, i) => d === p.torchShape[i]) : p.size === 1 && got.reduce((a, b) => a * b, 1) === 1;
      if (!same) misshaped.push({ key, expected: p.torchShape, got });
    }
    if (misshaped.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(sourceName, strict ? missing : [], strict ? unexpected : [], misshaped);
    }
    for (const [key, p] of params) {
      if (!present.has(key)) continue;
      p.assignHost(torchToTfHost(p.layout, p.torchShape, source.readFloat32(prefix + key)));
    }
    return this;
  }

  /** The weights in PyTorch layout, keyed as in the reference checkpoint (host copies). */
  stateDict(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [key, p] of this.namedParameters()) {
      const t = tfToTorch(p.layout, p.value);
      out.set(key, { shape: [...p.torchShape], data: t.dataSync() as Float32Array });
      t.dispose();
    }
    return out;
  }

  /** Frees every parameter's memory. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}

/** `nn.ModuleList`: children named 0, 1, 2, ... */
export class ModuleList<M extends Module> extends Module {
  constructor(readonly items: M[]) {
    super();
    items.forEach((m, i) => this.module(String(i), m));
  }
}
