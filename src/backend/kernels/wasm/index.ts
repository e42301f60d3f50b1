import { registerWasmGradKernels } from '../../wasmGradKernels';
import { registerWasmBatchMatMul } from './batchMatMul';
import { registerWasmConv2DBackpropInput } from './conv2dBackpropInput';
import { registerWasmSlicing } from './slice';
import { registerWasmSum } from './sum';
import { registerWasmTranspose } from './transpose';

/**
 * Composite kernels for the wasm backend: gradients of convolutions it lacks, and routes to its fast
 * GEMM and convolution for the matmul and convolution-gradient cases it runs slowly.
 */
export function registerWasmKernels(): void {
  registerWasmGradKernels();
  registerWasmBatchMatMul();
  registerWasmConv2DBackpropInput();
  registerWasmSlicing();
  registerWasmSum();
  registerWasmTranspose();
}
