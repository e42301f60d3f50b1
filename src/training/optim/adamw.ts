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
 */
import { tf, Tensor } from '../../backend';
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

export class AdamW extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: Array<[string, Parameter]>, opts: AdamWOptions = {}) {
    super('adamw', params);
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
  }

  protected slotNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected slotShape(_key: string, p: Parameter): number[] {
    return p.shape;
  }

  protected update(key: string, p: Parameter, g: Tensor, lr: number, t: number): void {
    const { beta1, beta2, eps, weightDecay } = this;
    const m = this.slot(key, p, 'exp_avg');
    const v = this.slot(key, p, 'exp_avg_sq');
    const [m2, v2] = tf.tidy(() => {
      let w: Tensor = p.value;
      if (weightDecay !== 0) w = w.mul(1 - lr * weightDecay);
      const mNew = lerp(m, g, 1 - beta1);
      const vNew = v.mul(beta2).add(g.mul(1 - beta2).mul(g));
      const stepSize = lr / (1 - beta1 ** t);
      const denom = vNew.sqrt().div(Math.sqrt(1 - beta2 ** t)).add(eps);
      p.value.assign(w.add(mNew.mul(-stepSize).div(denom)));
      return [mNew, vNew];
    });
    this.setSlot(key, 'exp_avg', m2);
    this.setSlot(key, 'exp_avg_sq', v2);
  }
}
