/**
 * Wrapping a kernel the wasm backend already has (see `../wrap.ts`), and reading its inputs as tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { OriginalKernel, wrapKernel } from '../wrap';

export type { OriginalKernel };

/** Replaces wasm kernel `kernelName` by `make(original)` (see `wrapKernel`). */
export function wrapWasmKernel(kernelName: string, make: (original: OriginalKernel) => tf.KernelFunc): void {
  wrapKernel('wasm', kernelName, make);
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
