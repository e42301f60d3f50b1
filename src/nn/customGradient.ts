/**
 * Functions with a hand-written gradient (a typed wrapper of `tf.customGrad`). Used where the chain
 * rule through tfjs' primitive gradients issues many more kernels than the derivative needs: every
 * kernel costs tens of microseconds on native TensorFlow, however small its tensors.
 */
import { tf, Tensor } from '../backend';

export interface CustomGradientResult {
  value: Tensor;
  /** Gradients with respect to each input, from the output's gradient and the saved tensors. */
  gradFunc: (dy: Tensor, saved: Tensor[]) => Tensor[];
}

/**
 * `f(xs, save)` computes the value from `arity` input tensors and may `save` tensors for the backward
 * pass. Outside a gradient computation the result is just the value.
 */
export function customGradient(arity: number, f: (xs: Tensor[], save: (ts: Tensor[]) => void) => CustomGradientResult): (...xs: Tensor[]) => Tensor {
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args[arity] as tf.GradSaveFunc;
    const { value, gradFunc } = f(args.slice(0, arity) as Tensor[], save);
    return { value, gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => gradFunc(dy as Tensor, saved) };
  });
  return (...xs: Tensor[]) => {
    if (xs.length !== arity) throw new Error(`customGradient: expected ${arity} inputs, got ${xs.length}`);
    return (op as unknown as (...ts: Tensor[]) => Tensor)(...xs);
  };
}
