/**
 * Wrapping a kernel the wasm backend already has: the replacement receives the original kernel
 * function, to hand it the cases it runs fast, and keeps the original `setupFunc` (which binds the
 * wasm export when the backend starts).
 */
import * as tf from '@tensorflow/tfjs';

const wrapped = new Set<string>();

/** The original kernel, called with the arguments the engine gave the replacement. */
export type OriginalKernel = (args: Parameters<tf.KernelFunc>[0]) => ReturnType<tf.KernelFunc>;

/**
 * Replaces wasm kernel `kernelName` by `make(original)`. Idempotent; does nothing when wasm has no such
 * kernel (then a plain composite should be registered instead).
 */
export function wrapWasmKernel(kernelName: string, make: (original: OriginalKernel) => tf.KernelFunc): void {
  if (wrapped.has(kernelName)) return;
  const original = tf.getKernel(kernelName, 'wasm');
  if (!original) return;
  wrapped.add(kernelName);
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc: make(original.kernelFunc as OriginalKernel) });
}

/**
 * The kernel inputs as tensors. The engine hands a kernel the op's own input tensors; they are used
 * as they are and never disposed here (a wrapper made with makeTensorFromTensorInfo would release the
 * caller's data on dispose, since the wasm backend has no incRef).
 */
export function asTensor<T extends tf.Tensor = tf.Tensor>(info: tf.TensorInfo, kernelName: string): T {
  if (!(info instanceof tf.Tensor)) throw new Error(`${kernelName} (wasm composite): expected tensor inputs`);
  return info as T;
}
