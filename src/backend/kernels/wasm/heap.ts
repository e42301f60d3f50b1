/**
 * Access to the wasm backend's heap for the kernels in ./simd: where a tensor lives on it, scratch
 * space, and the SIMD kernels compiled against its memory (once per backend instance).
 */
import * as tf from '@tensorflow/tfjs';
import { SimdKernels, WasmMemory, instantiateSimdKernels } from './simd/kernels';

/** The part of tfjs-backend-wasm's backend used here. */
interface WasmBackendInternals {
  wasm: { wasmMemory?: WasmMemory; asm?: { memory?: WasmMemory } };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

export interface Heap {
  kernels: SimdKernels;
  /** Byte address of a tensor's data. */
  address(info: tf.TensorInfo): number;
  /** A new tensor of the backend (uninitialised), returned by the kernel or released with `free`. */
  alloc(shape: number[], dtype?: tf.DataType): tf.TensorInfo;
  free(info: tf.TensorInfo): void;
}

const heaps = new WeakMap<object, Heap | null>();

/** The heap of `backend` with its SIMD kernels, or null where they cannot run (no wasm SIMD). */
export function wasmHeap(backend: unknown): Heap | null {
  const b = backend as WasmBackendInternals;
  const known = heaps.get(b);
  if (known !== undefined) return known;
  const memory = b.wasm?.wasmMemory ?? b.wasm?.asm?.memory;
  const kernels = memory ? instantiateSimdKernels(memory) : null;
  const heap: Heap | null = kernels && {
    kernels,
    address(info) {
      const data = b.dataIdMap.get(info.dataId);
      if (!data) throw new Error('wasm heap: tensor data not found on the backend (disposed?)');
      return data.memoryOffset;
    },
    alloc: (shape, dtype = 'float32') => b.makeOutput(shape, dtype),
    free: (info) => void b.disposeData(info.dataId),
  };
  heaps.set(b, heap);
  return heap;
}
