/**
 * Access to the wasm backend's heap for the kernels in ./simd: where a tensor lives on it, scratch
 * space, and the SIMD kernels compiled against its memory (once per backend instance).
 */
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { HelperThreads } from './simd/helperThreads';
import { SimdKernels, WasmMemory, compileSimdModule, instantiateSimdKernels, isSharedMemory } from './simd/kernels';

/** The part of tfjs-backend-wasm's backend used here. */
interface WasmBackendInternals {
  wasm: { wasmMemory?: WasmMemory; asm?: { memory?: WasmMemory } };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

export interface Heap {
  kernels: SimdKernels;
  /** Whether the product kernels fuse multiply-adds (then they outrun XNNPACK's GEMM per thread). */
  fusedMultiplyAdd: boolean;
  /** Threads `runParts` spreads over: the backend's thread count on a shared heap, else 1. */
  threads: number;
  /** Runs kernel `name` once per argument list, concurrently on up to `threads` threads. */
  runParts(name: keyof SimdKernels, parts: number[][]): void;
  /** Resolves once the helper threads (if any) take parts. */
  ready(): Promise<void>;
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
  const module = memory ? compileSimdModule(isSharedMemory(memory)) : null;
  const kernels = memory && module ? instantiateSimdKernels(memory, module) : null;
  const helperCount = memory && isSharedMemory(memory) ? getThreadsCount() - 1 : 0;
  const helpers = kernels && module && memory && helperCount > 0 ? new HelperThreads(module, memory, Object.keys(kernels), helperCount) : null;
  const heap: Heap | null = kernels && module && {
    kernels,
    fusedMultiplyAdd: module.fusedMultiplyAdd,
    threads: helpers?.threads ?? 1,
    ready: async () => helpers?.ready(),
    runParts(name, parts) {
      const here = (args: number[]) => (kernels[name] as (...a: number[]) => void)(...args);
      if (helpers && parts.length > 1) helpers.run(name, parts, here);
      else parts.forEach(here);
    },
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

/**
 * Splits `count` items (rows in multiples of `granule`, or batch entries) into at most `parts`
 * contiguous ranges of near-equal size, as [start, length] pairs.
 */
export function splitRange(count: number, parts: number, granule: number): Array<[number, number]> {
  const units = Math.ceil(count / granule);
  const per = Math.ceil(units / Math.max(1, Math.min(parts, units)));
  const ranges: Array<[number, number]> = [];
  for (let u = 0; u < units; u += per) {
    const start = u * granule;
    ranges.push([start, Math.min(count, (u + per) * granule) - start]);
  }
  return ranges;
}
