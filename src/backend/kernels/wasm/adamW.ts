/**
 * The fused AdamW update (`fusedAdamW`) on wasm: the SIMD kernel `adamW` reads the weight, both
 * moments and the gradient once and writes the three results, split over the helper threads. The
 * element-wise rule takes ~14 passes of separate kernels (~90 ms per bench step on wasm); this one
 * computes the same operations in the same order, so its results are identical to the bit.
 */
import * as tf from '@tensorflow/tfjs';
import { ADAMW_KERNEL, AdamWStep } from '../../fusedAdamW';
import { Heap, splitRange, wasmHeap } from './heap';

/** Values below which the update stays on the calling thread. */
const MIN_SPLIT_VALUES = 1 << 16;

const bitsView = new Int32Array(1);
const floatView = new Float32Array(bitsView.buffer);

/** The bits of x rounded to float32, as the kernel's i32 arguments carry them. */
function f32Bits(x: number): number {
  floatView[0] = x;
  return bitsView[0];
}

function applyAdamW(heap: Heap, w: tf.TensorInfo, m: tf.TensorInfo, v: tf.TensorInfo, g: tf.TensorInfo, s: AdamWStep): tf.TensorInfo[] {
  const count = tf.util.sizeFromShape(w.shape);
  // The element-wise rule's scalars, each rounded to float32 as a tfjs scalar would be.
  const lerpWeight = 1 - s.beta1;
  const lerpFromG = lerpWeight < 0.5 ? 0 : 1;
  const lerpScale = lerpWeight < 0.5 ? Math.fround(lerpWeight) : -Math.fround(1 - lerpWeight);
  const decay = s.weightDecay !== 0 ? 1 - s.lr * s.weightDecay : 1;
  const bits = [decay, lerpScale, s.beta2, 1 - s.beta2, Math.sqrt(1 - s.beta2 ** s.t), s.eps, -(s.lr / (1 - s.beta1 ** s.t))].map(f32Bits);
  const outputs = [heap.alloc(w.shape), heap.alloc(w.shape), heap.alloc(w.shape)];
  const [wA, mA, vA, gA] = [w, m, v, g].map((x) => heap.address(x));
  const [woA, moA, voA] = outputs.map((x) => heap.address(x));
  const parts = splitRange(count, count >= MIN_SPLIT_VALUES ? heap.threads : 1, 4).map(([start, n]) => {
    const at = 4 * start;
    return [wA + at, mA + at, vA + at, gA + at, woA + at, moA + at, voA + at, n, lerpFromG, ...bits];
  });
  heap.runParts('adamW', parts);
  return outputs;
}

/** Registers the kernel for wasm where the SIMD kernels run (call once the backend has started). */
export function registerWasmAdamW(backend: unknown): void {
  if (!wasmHeap(backend) || tf.getKernel(ADAMW_KERNEL, 'wasm')) return;
  tf.registerKernel({
    kernelName: ADAMW_KERNEL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend: b }) => {
      const heap = wasmHeap(b);
      if (!heap) throw new Error(`${ADAMW_KERNEL}: the wasm backend's SIMD kernels are unavailable`);
      const { w, m, v, g } = inputs as Record<'w' | 'm' | 'v' | 'g', tf.TensorInfo>;
      return applyAdamW(heap, w, m, v, g, attrs as unknown as AdamWStep);
    },
  });
}
