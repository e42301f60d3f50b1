import { registerWasmGradKernels } from '../../wasmGradKernels';

/** Composite kernels the wasm backend lacks and the models need (gradients of convolutions). */
export function registerWasmKernels(): void {
  registerWasmGradKernels();
}
