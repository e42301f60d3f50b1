/**
 * 1 where x > 0, else 0 (the ReLU derivative), with the kernel that is fast on the current backend:
 * `Step` takes 0.14 ms on wasm for 262k values where `Sign` takes 1.9 ms; on native TensorFlow it is
 * the reverse (tfjs-node builds `Step` from five kernels: 2.5 ms against 0.22 ms for `Sign`). `Sign`
 * is only a 0/1 mask for x >= 0: callers pass ReLU outputs.
 */
import * as tf from '@tensorflow/tfjs';

export function positiveMask(nonNegative: tf.Tensor): tf.Tensor {
  return tf.getBackend() === 'wasm' ? tf.step(nonNegative) : tf.sign(nonNegative);
}
