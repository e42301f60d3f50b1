/**
 * Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_(params, max_norm)` with the
 * default 2-norm: the total norm is the 2-norm of the per-tensor 2-norms, and every gradient is scaled
 * by min(max_norm / (total + 1e-6), 1).
 */
import { tf, Scalar, Tensor } from '../../backend';

/** torch adds this to the norm before dividing, so a zero gradient never divides by zero. */
const NORM_EPS = 1e-6;

/** The 2-norm of all gradients together (a scalar on device). */
export function globalGradNorm(grads: Map<string, Tensor>): Scalar {
  return tf.tidy(() => {
    if (grads.size === 0) return tf.scalar(0);
    const norms = [...grads.values()].map((g) => tf.norm(g));
    return tf.norm(tf.stack(norms)) as Scalar;
  });
}

export interface ClippedGrads {
  /** New gradient tensors (the inputs are not disposed). */
  grads: Map<string, Tensor>;
  /** Norm before clipping (what torch returns and what gets logged as grad_norm). */
  totalNorm: Scalar;
}

/**
 * Scales `grads` so their global norm is at most `maxNorm`. With `maxNorm` null, 0 or Infinity the
 * gradients are copied unchanged and only the norm is computed.
 */
export function clipGradNorm(grads: Map<string, Tensor>, maxNorm: number | null): ClippedGrads {
  const keys = [...grads.keys()];
  // tidy keeps tensors returned in arrays and plain objects, not in Maps: return a list, key it after.
  const [totalNorm, ...scaled] = tf.tidy(() => {
    const total = globalGradNorm(grads);
    if (!maxNorm || !Number.isFinite(maxNorm)) return [total, ...keys.map((k) => grads.get(k)!.clone())];
    const coef = tf.minimum(tf.div(maxNorm, total.add(NORM_EPS)), 1);
    return [total, ...keys.map((k) => grads.get(k)!.mul(coef))];
  });
  return { grads: new Map(keys.map((k, i) => [k, scaled[i]])), totalNorm: totalNorm as Scalar };
}
