/**
 * CAME (Confidence-guided Adaptive Memory Efficient optimisation, Luo et al. 2023), in the two
 * variants SANA users meet: the published implementation (yangluo7/CAME `came_pytorch/CAME.py`) and
 * SANA's `CAMEWrapper` (NVlabs/Sana `diffusion/utils/optimizer.py`), which SANA's configs train with.
 * The update (no bias correction anywhere; d = clip_threshold):
 *
 *   u = g^2 + eps1
 *   factored:   R = b2*R + (1-b2)*mean(u, cols);  C = b2*C + (1-b2)*mean(u, rows)
 *               U = rsqrt(R / mean(R)) (x) rsqrt(C) * g         (outer product over the two axes)
 *   unfactored: V = b2*V + (1-b2)*u;  U = rsqrt(V) * g
 *   U = U / max(1, RMS(U) / d)
 *   m = b1*m + (1-b1)*U
 *   r = (U - m)^2 + eps2
 *   factored:   Rr, Cr as R, C with b3 over r;  update = rsqrt(Rr / mean(Rr)) (x) rsqrt(Cr) * m
 *   unfactored: update = m
 *   p = p - wd*lr*p  (if wd != 0);  p = p - lr*update
 *
 * The variants differ only in which tensors are factored, judged on the PyTorch shape:
 * - 'official': every tensor of rank >= 2, over its last two axes (a kxk conv [O, I, kh, kw] gets row
 *   statistics [O, I, kh] and column statistics [O, I, kw]);
 * - 'sana': 2-D tensors and 1x1 convs [O, I, 1, 1], over (O, I); everything else unfactored.
 *
 * Statistics are kept in memory layout with the reduced axis kept as size 1, so they broadcast
 * against the parameter directly; `slotToTorch` gives the reference's shapes.
 */
import { tf, Tensor } from '../../backend';
import { Parameter } from '../../nn/module';
import { Optimizer } from './optimizer';
import { torchAxesInMemory } from './layoutAxes';

export type CameFactoring = 'official' | 'sana';

export interface CAMEOptions {
  betas?: [number, number, number];
  eps?: [number, number];
  clipThreshold?: number;
  weightDecay?: number;
  /** Which tensors get factored statistics; 'sana' (SANA's CAMEWrapper) by default. */
  factoring?: CameFactoring;
}

/** The two PyTorch axes a factored tensor is split over, and where they live in memory. */
interface Factoring {
  /** Memory axis of the row axis (statistics R are reduced over the column axis). */
  rowAxis: number;
  /** Memory axis of the column axis. */
  colAxis: number;
  /** Reference shapes of the row and column statistics (PyTorch layout). */
  rowTorchShape: number[];
  colTorchShape: number[];
}

function factoringOf(p: Parameter, rule: CameFactoring): Factoring | null {
  const s = p.torchShape;
  const axes = torchAxesInMemory(p.layout, s.length);
  let a: number;
  let b: number;
  if (rule === 'official') {
    if (s.length < 2) return null;
    [a, b] = [s.length - 2, s.length - 1];
    return {
      rowAxis: axes[a],
      colAxis: axes[b],
      rowTorchShape: s.slice(0, b),
      colTorchShape: [...s.slice(0, a), s[b]],
    };
  }
  const linear = s.length === 2;
  const pointwiseConv = s.length === 4 && s[2] === 1 && s[3] === 1;
  if (!linear && !pointwiseConv) return null;
  [a, b] = [0, 1];
  return { rowAxis: axes[a], colAxis: axes[b], rowTorchShape: [s[0]], colTorchShape: [s[1]] };
}

/** rsqrt(R / mean(R over rows)) (x) rsqrt(C): the factored estimate of 1/sqrt(second moment). */
function approxInvSqrt(row: Tensor, col: Tensor, f: Factoring): Tensor {
  const rFactor = row.div(row.mean(f.rowAxis, true)).rsqrt();
  return rFactor.mul(col.rsqrt());
}

/** RMS(x) = ||x||_2 / sqrt(numel). */
function rms(x: Tensor): Tensor {
  return tf.norm(x).div(Math.sqrt(x.size));
}

export class CAME extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly beta3: number;
  readonly eps1: number;
  readonly eps2: number;
  readonly clipThreshold: number;
  readonly weightDecay: number;
  readonly factoring: CameFactoring;
  private readonly factorings = new Map<string, Factoring | null>();

  constructor(params: Array<[string, Parameter]>, opts: CAMEOptions = {}) {
    super('came', params);
    [this.beta1, this.beta2, this.beta3] = opts.betas ?? [0.9, 0.999, 0.9999];
    [this.eps1, this.eps2] = opts.eps ?? [1e-30, 1e-16];
    this.clipThreshold = opts.clipThreshold ?? 1.0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.factoring = opts.factoring ?? 'sana';
    for (const [key, p] of params) this.factorings.set(key, factoringOf(p, this.factoring));
  }

  /** Whether a parameter's statistics are factored under this optimizer's rule. */
  isFactored(key: string): boolean {
    return this.factorings.get(key) != null;
  }

  protected slotNames(key: string): string[] {
    return this.factorings.get(key)
      ? ['exp_avg', 'exp_avg_sq_row', 'exp_avg_sq_col', 'exp_avg_res_row', 'exp_avg_res_col']
      : ['exp_avg', 'exp_avg_sq'];
  }

  protected slotShape(key: string, p: Parameter, name: string): number[] {
    const shape = p.shape;
    const f = this.factorings.get(key);
    if (!f || name === 'exp_avg' || name === 'exp_avg_sq') return shape;
    const reduced = name.endsWith('_row') ? f.colAxis : f.rowAxis;
    return shape.map((d, i) => (i === reduced ? 1 : d));
  }

  protected update(key: string, p: Parameter, g: Tensor, lr: number): void {
    const { beta1, beta2, beta3, eps1, eps2, clipThreshold, weightDecay } = this;
    const f = this.factorings.get(key) ?? null;
    const names = this.slotNames(key);
    const old = names.map((n) => this.slot(key, p, n));
    const fresh = tf.tidy(() => {
      const next: Tensor[] = [];
      // 1. Second-moment statistics of the gradient and the preconditioned update U.
      const u = g.square().add(eps1);
      let U: Tensor;
      if (f) {
        const R = old[1].mul(beta2).add(u.mean(f.colAxis, true).mul(1 - beta2));
        const C = old[2].mul(beta2).add(u.mean(f.rowAxis, true).mul(1 - beta2));
        U = approxInvSqrt(R, C, f).mul(g);
        next[1] = R;
        next[2] = C;
      } else {
        const V = old[1].mul(beta2).add(u.mul(1 - beta2));
        U = V.rsqrt().mul(g);
        next[1] = V;
      }
      // 2. Clip U by its RMS, then the first moment.
      U = U.div(tf.maximum(rms(U).div(clipThreshold), 1));
      const m = old[0].mul(beta1).add(U.mul(1 - beta1));
      next[0] = m;
      // 3. Confidence: the instability (U - m)^2 rescales the first moment (factored tensors only).
      let update: Tensor = m;
      if (f) {
        const r = U.sub(m).square().add(eps2);
        const Rr = old[3].mul(beta3).add(r.mean(f.colAxis, true).mul(1 - beta3));
        const Cr = old[4].mul(beta3).add(r.mean(f.rowAxis, true).mul(1 - beta3));
        update = approxInvSqrt(Rr, Cr, f).mul(m);
        next[3] = Rr;
        next[4] = Cr;
      }
      // 4. Decoupled weight decay, then the step.
      let w: Tensor = p.value;
      if (weightDecay !== 0) w = w.add(w.mul(-weightDecay * lr));
      p.value.assign(w.sub(update.mul(lr)));
      return next;
    });
    names.forEach((n, i) => this.setSlot(key, n, fresh[i]));
  }

  protected override slotTorchShape(key: string, p: Parameter, name: string): number[] {
    const f = this.factorings.get(key);
    if (!f || name === 'exp_avg' || name === 'exp_avg_sq') return [...p.torchShape];
    return name.endsWith('_row') ? f.rowTorchShape : f.colTorchShape;
  }
}
