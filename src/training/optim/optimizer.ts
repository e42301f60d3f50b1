/**
 * Shared machinery of the optimizers: parameters and state slots keyed by checkpoint key, so
 * gradients, optimizer state and saved files share one key space (`<param key>.<slot>`).
 *
 * State tensors live on device in the parameter's memory (TF) layout and are replaced, not mutated, at
 * every step: the old tensor is disposed when the new one is stored, so the tensor count stays flat.
 */
import { tf, Tensor } from '../../backend';
import { Parameter } from '../../nn/module';
import { torchAxesInMemory } from './layoutAxes';

/** Host copy of one state tensor (memory layout). */
export interface HostState {
  shape: number[];
  data: Float32Array;
}

/** Everything needed to restore an optimizer exactly: slot tensors plus per-parameter step counts. */
export interface OptimizerState {
  /** Optimizer name (`adamw`, `came`); a mismatch on load is an error. */
  type: string;
  /** Steps taken per parameter key (torch keeps `state['step']` per parameter too). */
  steps: Record<string, number>;
  /** `<param key>.<slot>` -> tensor. */
  tensors: Map<string, HostState>;
}

export abstract class Optimizer {
  protected readonly slots = new Map<string, Map<string, Tensor>>();
  protected readonly steps = new Map<string, number>();
  private readonly byKey: Map<string, Parameter>;

  constructor(
    /** Short name written into saved state. */
    readonly type: string,
    /** Parameters to update, keyed by checkpoint key. */
    readonly params: Array<[string, Parameter]>,
  ) {
    this.byKey = new Map(params);
    if (this.byKey.size !== params.length) throw new Error(`${type}: duplicate parameter keys`);
  }

  /**
   * One update of every parameter that has a gradient (a parameter without one is left alone, as
   * torch skips `p.grad is None`). `grads` are in memory layout; `lr` is this step's learning rate.
   */
  step(grads: Map<string, Tensor>, lr: number): void {
    this.checkGrads(grads);
    for (const [key, p] of this.params) {
      const g = grads.get(key);
      if (!g) continue;
      this.update(key, p, g, lr, this.nextStep(key));
    }
  }

  /** Every gradient names a parameter of this optimizer and has its shape. */
  protected checkGrads(grads: Map<string, Tensor>): void {
    for (const [key, g] of grads) {
      const p = this.byKey.get(key);
      if (!p) throw new Error(`${this.type}: gradient for unknown parameter "${key}"`);
      const want = p.shape;
      if (g.shape.length !== want.length || g.shape.some((d, i) => d !== want[i])) {
        throw new Error(`${this.type}: gradient of "${key}" has shape [${g.shape}], parameter is [${want}]`);
      }
    }
  }

  /** Counts one more step for a parameter; returns the new count (from 1). */
  protected nextStep(key: string): number {
    const t = (this.steps.get(key) ?? 0) + 1;
    this.steps.set(key, t);
    return t;
  }

  /** Updates one parameter in place (assigning its variable) and its slots. `t` counts from 1. */
  protected abstract update(key: string, p: Parameter, g: Tensor, lr: number, t: number): void;

  /** Shape of slot `name` of parameter `p` (memory layout). */
  protected abstract slotShape(key: string, p: Parameter, name: string): number[];

  /** The slot tensor, zero-initialised on first use. */
  protected slot(key: string, p: Parameter, name: string): Tensor {
    let m = this.slots.get(key);
    if (!m) this.slots.set(key, (m = new Map()));
    let t = m.get(name);
    if (!t) {
      t = tf.keep(tf.zeros(this.slotShape(key, p, name), 'float32'));
      m.set(name, t);
    }
    return t;
  }

  /** Replaces a slot (takes ownership of `t`, disposes the previous tensor). */
  protected setSlot(key: string, name: string, t: Tensor): void {
    const m = this.slots.get(key)!;
    const old = m.get(name);
    m.set(name, tf.keep(t));
    if (old && old !== t) old.dispose();
  }

  /**
   * Moves state kept in another form (AdamW's flat buckets) into `slots`, one tensor per parameter and
   * slot, before anything reads `slots` from outside an update.
   */
  protected materializeSlots(): void {}

  /** Current state tensors of one parameter (for inspection and tests); memory layout. */
  slotsOf(key: string): ReadonlyMap<string, Tensor> {
    this.materializeSlots();
    return this.slots.get(key) ?? new Map();
  }

  /** Reference (PyTorch) shape of a slot; full-size slots have the parameter's PyTorch shape. */
  protected slotTorchShape(_key: string, p: Parameter, _name: string): number[] {
    return [...p.torchShape];
  }

  /**
   * A state tensor in the reference's layout and shape (torch `optimizer.state[p][name]`), for
   * comparisons with PyTorch. Axes are put in PyTorch order, then kept size-1 axes are dropped.
   */
  slotToTorch(key: string, name: string): Tensor {
    this.materializeSlots();
    const p = this.byKey.get(key);
    const t = this.slots.get(key)?.get(name);
    if (!p || !t) throw new Error(`${this.type}: no slot "${name}" for "${key}"`);
    return tf.tidy(() => t.transpose(torchAxesInMemory(p.layout, p.torchShape.length)).reshape(this.slotTorchShape(key, p, name)));
  }

  /** A host copy of the whole state, for checkpoints. */
  getState(): OptimizerState {
    this.materializeSlots();
    const tensors = new Map<string, HostState>();
    for (const [key, m] of this.slots) {
      for (const [name, t] of m) tensors.set(`${key}.${name}`, { shape: [...t.shape], data: t.dataSync() as Float32Array });
    }
    return { type: this.type, steps: Object.fromEntries(this.steps), tensors };
  }

  /**
   * Restores a state saved by `getState` (same optimizer type, same parameters). Every problem (unknown
   * parameter, missing or unexpected slot, wrong shape) is listed in one error naming `sourceName`.
   */
  setState(state: OptimizerState, sourceName = 'optimizer state'): void {
    if (state.type !== this.type) throw new Error(`${sourceName}: saved by optimizer "${state.type}", this run uses "${this.type}"`);
    const problems: string[] = [];
    const expected = new Map<string, number[]>();
    for (const key of Object.keys(state.steps)) {
      const p = this.byKey.get(key);
      if (!p) {
        problems.push(`state for unknown parameter "${key}"`);
        continue;
      }
      for (const name of this.slotNames(key, p)) expected.set(`${key}.${name}`, this.slotShape(key, p, name));
    }
    for (const [k, shape] of expected) {
      const got = state.tensors.get(k);
      if (!got) problems.push(`missing "${k}"`);
      else if (got.shape.length !== shape.length || got.shape.some((d, i) => d !== shape[i])) problems.push(`"${k}" has shape [${got.shape}], expected [${shape}]`);
    }
    for (const k of state.tensors.keys()) if (!expected.has(k)) problems.push(`unexpected "${k}"`);
    if (problems.length) throw new Error(`${sourceName}: does not fit this optimizer: ${problems.slice(0, 20).join('; ')}${problems.length > 20 ? ` (${problems.length} problems)` : ''}`);

    this.materializeSlots();
    this.disposeState();
    for (const [key, t] of Object.entries(state.steps)) this.steps.set(key, t);
    for (const [k, host] of expected) {
      const [key, name] = splitSlotKey(k, this.byKey);
      const { data } = state.tensors.get(k)!;
      const m = this.slots.get(key) ?? new Map<string, Tensor>();
      this.slots.set(key, m);
      m.set(name, tf.keep(tf.tensor(data, host, 'float32')));
    }
  }

  /** Names of the slots a parameter has once stepped. */
  protected abstract slotNames(key: string, p: Parameter): string[];

  private disposeState(): void {
    for (const m of this.slots.values()) for (const t of m.values()) t.dispose();
    this.slots.clear();
    this.steps.clear();
  }

  /** Frees every state tensor. */
  dispose(): void {
    this.materializeSlots();
    this.disposeState();
  }
}

/** Splits `<param key>.<slot>` (param keys contain dots; slot names do not). */
function splitSlotKey(k: string, params: Map<string, Parameter>): [string, string] {
  const i = k.lastIndexOf('.');
  const key = k.slice(0, i);
  if (!params.has(key)) throw new Error(`optimizer state key "${k}" names no parameter`);
  return [key, k.slice(i + 1)];
}
