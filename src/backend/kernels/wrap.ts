/**
 * Wrapping a kernel a backend already has: the replacement receives the original kernel function, to
 * hand it the cases it already runs well, and keeps the original `setupFunc` (which binds the wasm
 * export when that backend starts).
 */
import * as tf from '@tensorflow/tfjs';

const wrapped = new Set<string>();

/** The original kernel, called with the arguments the engine gave the replacement. */
export type OriginalKernel = (args: Parameters<tf.KernelFunc>[0]) => ReturnType<tf.KernelFunc>;

/**
 * Replaces `backendName`'s kernel `kernelName` by `make(original)`. Idempotent; does nothing when the
 * backend has no such kernel (then a plain composite should be registered instead).
 */
export function wrapKernel(backendName: string, kernelName: string, make: (original: OriginalKernel) => tf.KernelFunc): void {
  const key = `${backendName}/${kernelName}`;
  if (wrapped.has(key)) return;
  const original = tf.getKernel(kernelName, backendName);
  if (!original) return;
  wrapped.add(key);
  tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, setupFunc: original.setupFunc, kernelFunc: make(original.kernelFunc as OriginalKernel) });
}
