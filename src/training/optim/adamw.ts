/**
 * AdamW with decoupled weight decay, following the single-tensor path of `torch.optim.AdamW`
 * (torch/optim/adamw.py, adam.py) operation by operation so float32 trajectories agree closely:
 *
 *   p = p * (1 - lr*wd)                              (decay first)
 *   m = lerp(m, g, 1 - beta1)
 *   v = beta2*v + (1 - beta2)*g*g
 *   denom = sqrt(v) / sqrt(1 - beta2^t) + eps        (eps after the bias correction)
 *   p = p - (lr / (1 - beta1^t)) * m / denom
 *
 * Scalars are computed in double precision on the host, as Python does, and rounded to float32 when used.
 *
 * Parameters are updated in buckets: the gradients and weights of consecutive parameters are joined
 * into one flat vector and the update runs once over it, with the moments stored flat per bucket.
 * Every element sees the same operations as in a per-parameter update (identical results), but a
 * step issues ~20 kernels per bucket instead of ~14 per parameter; on native TensorFlow each kernel
 * costs tens of microseconds however small, which made the per-parameter update a fifth of a
 * training step for a 100-tensor model. There the rule itself runs as one fused kernel (see
 * `fusedAdamW`: TensorFlow's Adam update, the same formulas up to float32 rounding; on wasm a SIMD
 * kernel with the element-wise rule's arithmetic), per bucket and per parameter alike.
 */
import { tf, fusedAdamW, Tensor } from '../../backend';
import { Parameter } from '../../nn/module';
import { Optimizer } from './optimizer';

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** torch's `lerp_` picks one of two formulas by the weight, for accuracy near either end. */
function lerp(a: Tensor, b: Tensor, w: number): Tensor {
  return w < 0.5 ? a.add(b.sub(a).mul(w)) : b.sub(b.sub(a).mul(1 - w));
}

/** Most elements joined into one bucket (16 MB of float32): bounds the temporary memory of an update. */
const BUCKET_ELEMENTS = 1 << 22;

/** Consecutive parameters updated together, and their flat moments once stepped. */
interface Bucket {
  keys: string[];
  params: Parameter[];
  sizes: number[];
  /** Flat first and second moments (null until the first bucketed step, or after `materializeSlots`). */
  m: Tensor | null;
  v: Tensor | null;
}

export class AdamW extends Optimizer {
  private readonly buckets: Bucket[] = [];
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: Array<[string, Parameter]>, opts: AdamWOptions = {}) {
    super('adamw', params);
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    let current: Bucket | null = null;
    let filled = 0;
    for (const [key, p] of params) {
      if (!current || filled + p.size > BUCKET_ELEMENTS) {
        current = { keys: [], params: [], sizes: [], m: null, v: null };
        this.buckets.push(current);
        filled = 0;
      }
      current.keys.push(key);
      current.params.push(p);
      current.sizes.push(p.size);
      filled += p.size;
    }
  }

  /**
   * A bucket runs as one flat update when all its parameters have a gradient and the same step count
   * (always, in training); otherwise its parameters are updated one by one.
   */
  override step(grads: Map<string, Tensor>, lr: number): void {
    this.checkGrads(grads);
    for (const b of this.buckets) {
      const t0 = this.steps.get(b.keys[0]) ?? 0;
      const whole = b.keys.every((k) => grads.has(k) && (this.steps.get(k) ?? 0) === t0);
      if (whole && b.keys.length > 1) {
        for (const k of b.keys) this.nextStep(k);
        this.updateBucket(b, b.keys.map((k) => grads.get(k)!), lr, t0 + 1);
        continue;
      }
      this.unflatten(b);
      b.keys.forEach((key, i) => {
        const g = grads.get(key);
        if (g) this.update(key, b.params[i], g, lr, this.nextStep(key));
      });
    }
  }

  /** The AdamW rule over a bucket's parameters joined end to end. */
  private updateBucket(b: Bucket, grads: Tensor[], lr: number, t: number): void {
    const flat = (ts: Tensor[]) => tf.concat(ts.map((x) => x.reshape([-1])));
    if (!b.m || !b.v) {
      // First bucketed step: moments from per-parameter slots (restored state), else zeros.
      b.m = tf.keep(tf.tidy(() => flat(b.keys.map((k, i) => this.slot(k, b.params[i], 'exp_avg')))));
      b.v = tf.keep(tf.tidy(() => flat(b.keys.map((k, i) => this.slot(k, b.params[i], 'exp_avg_sq')))));
      for (const k of b.keys) {
        for (const x of this.slots.get(k)?.values() ?? []) x.dispose();
        this.slots.delete(k);
      }
    }
    const m = b.m;
    const v = b.v;
    const [m2, v2] = tf.tidy(() => {
      const [wNew, mNew, vNew] = this.rule(flat(b.params.map((p) => p.value)), m, v, flat(grads), lr, t);
      const updated = tf.split(wNew, b.sizes);
      b.params.forEach((p, i) => p.value.assign(updated[i].reshape(p.shape)));
      return [mNew, vNew];
    });
    b.m = tf.keep(m2);
    b.v = tf.keep(v2);
    m.dispose();
    v.dispose();
  }

  /** Moves a bucket's flat moments into per-parameter slots. */
  private unflatten(b: Bucket): void {
    if (!b.m || !b.v) return;
    const { m, v } = b;
    b.m = b.v = null;
    for (const [name, flat] of [['exp_avg', m], ['exp_avg_sq', v]] as const) {
      const parts = tf.tidy(() => tf.split(flat, b.sizes).map((x, i) => x.reshape(b.params[i].shape)));
      b.keys.forEach((k, i) => {
        let slots = this.slots.get(k);
        if (!slots) this.slots.set(k, (slots = new Map()));
        slots.get(name)?.dispose();
        slots.set(name, tf.keep(parts[i]));
      });
      flat.dispose();
    }
  }

  protected override materializeSlots(): void {
    for (const b of this.buckets) this.unflatten(b);
  }

  protected slotNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected slotShape(_key: string, p: Parameter): number[] {
    return p.shape;
  }

  /** [w, m, v] after step t: one fused kernel where the backend has it, else torch's operations in order. */
  private rule(w: Tensor, m: Tensor, v: Tensor, g: Tensor, lr: number, t: number): [Tensor, Tensor, Tensor] {
    const { beta1, beta2, eps, weightDecay } = this;
    const fused = fusedAdamW(w, m, v, g, { lr, beta1, beta2, eps, weightDecay, t });
    if (fused) return fused;
    if (weightDecay !== 0) w = w.mul(1 - lr * weightDecay);
    const mNew = lerp(m, g, 1 - beta1);
    const vNew = v.mul(beta2).add(g.mul(1 - beta2).mul(g));
    const stepSize = lr / (1 - beta1 ** t);
    const denom = vNew.sqrt().div(Math.sqrt(1 - beta2 ** t)).add(eps);
    return [w.add(mNew.mul(-stepSize).div(denom)), mNew, vNew];
  }

  protected update(key: string, p: Parameter, g: Tensor, lr: number, t: number): void {
    const m = this.slot(key, p, 'exp_avg');
    const v = this.slot(key, p, 'exp_avg_sq');
    const [m2, v2] = tf.tidy(() => {
      const [wNew, mNew, vNew] = this.rule(p.value, m, v, g, lr, t);
      p.value.assign(wNew);
      return [mNew, vNew];
    });
    this.setSlot(key, 'exp_avg', m2);
    this.setSlot(key, 'exp_avg_sq', v2);
  }
}
