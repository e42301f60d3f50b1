/**
 * Activation functions by their reference names (`gelu-approximate=tanh`, `silu`, `quick_gelu`, ...).
 */
import { tf, positiveMask, Tensor } from '../backend';
import { customGradient } from './customGradient';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GELU with the tanh approximation (`nn.GELU(approximate="tanh")`, `gelu_pytorch_tanh`). */
export function geluTanh(x: Tensor): Tensor {
  return tf.tidy(() => {
    const inner = x.add(x.mul(x).mul(x).mul(0.044715)).mul(SQRT_2_OVER_PI);
    return x.mul(0.5).mul(inner.tanh().add(1));
  });
}

/** Exact GELU, x * Phi(x) (`nn.GELU()`). */
export function gelu(x: Tensor): Tensor {
  return tf.tidy(() => x.mul(0.5).mul(x.mul(Math.SQRT1_2).erf().add(1)));
}

/**
 * SiLU / swish, x * sigmoid(x). The gradient is written out, dy * s * (1 + x - y) with s = sigmoid(x)
 * and y = x * s: four kernels where the chain rule through the product and the sigmoid issues six.
 */
export const silu: (x: Tensor) => Tensor = customGradient(1, ([x], save) => {
  const s = tf.sigmoid(x);
  const y = tf.mul(x, s);
  save([x, s, y]);
  return { value: y, gradFunc: (dy, [xs, ss, ys]) => [tf.tidy(() => dy.mul(ss.mul(xs.sub(ys).add(1))))] };
});

/**
 * max(x, 0). Its gradient is dy times the 0/1 mask of y > 0 (`positiveMask`, one kernel on every
 * backend): tfjs' own ReLU gradient goes through `step`, five kernels on native TensorFlow.
 */
export const relu: (x: Tensor) => Tensor = customGradient(1, ([x], save) => {
  const y = tf.relu(x);
  save([y]);
  return { value: y, gradFunc: (dy, [ys]) => [tf.tidy(() => tf.mul(dy, positiveMask(ys)))] };
});

/** CLIP's quick GELU, x * sigmoid(1.702 x). */
export function quickGelu(x: Tensor): Tensor {
  return tf.tidy(() => x.mul(x.mul(1.702).sigmoid()));
}

export type ActivationName = 'gelu_tanh' | 'gelu' | 'silu' | 'relu' | 'quick_gelu' | 'identity';

const ALIASES: Record<string, ActivationName> = {
  gelu_tanh: 'gelu_tanh',
  'gelu-approximate': 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu: 'gelu',
  silu: 'silu',
  swish: 'silu',
  relu: 'relu',
  quick_gelu: 'quick_gelu',
  identity: 'identity',
};

/** Resolves a reference activation name; unknown names are an error listing the known ones. */
export function activation(name: string | null | undefined): (x: Tensor) => Tensor {
  const n = name == null ? 'identity' : ALIASES[name];
  switch (n) {
    case 'gelu_tanh': return geluTanh;
    case 'gelu': return gelu;
    case 'silu': return silu;
    case 'relu': return relu;
    case 'quick_gelu': return quickGelu;
    case 'identity': return (x) => x;
    default: throw new Error(`unknown activation "${name}" (expected one of ${Object.keys(ALIASES).join(', ')})`);
  }
}
