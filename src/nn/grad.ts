/**
 * Gradients keyed by checkpoint key: wraps `tf.variableGrads` so callers never see variable names.
 */
import { tf, Scalar, Tensor } from '../backend';
import { Parameter } from './module';

export interface ValueAndGrads {
  value: Scalar;
  /** d value / d parameter, TF layout, keyed like the parameters given. */
  grads: Map<string, Tensor>;
}

/** Evaluates `f` and its gradient with respect to `params` (which must be materialised). */
export function valueAndGrads(f: () => Scalar, params: Array<[string, Parameter]>): ValueAndGrads {
  const vars = params.map(([, p]) => p.value);
  const { value, grads } = tf.variableGrads(f, vars);
  const out = new Map<string, Tensor>();
  for (const [key, p] of params) {
    const g = grads[p.value.name];
    // A parameter the loss does not depend on gets a zero gradient, as PyTorch reports for used modules.
    out.set(key, g ?? tf.zerosLike(p.value));
  }
  return { value, grads: out };
}
