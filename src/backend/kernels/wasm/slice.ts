/**
 * `Slice`, `SplitV` and `Unpack` on wasm without the whole-input copy: tfjs-backend-wasm 4.22 reads the
 * entire input back to JS (`readSync`) for every slice, and splits and unstacks slice once per part,
 * so splitting a 1 MB tensor into n parts copied n MB (measured ~1.2 ms per slice of a [8192, 32]
 * tensor; an unstack into 32 heads took 40 ms). Here each output is filled straight from the wasm
 * heap, one contiguous run at a time. `Identity` (which the engine runs on every tensor it saves for
 * a backward pass) shares the input's data instead of copying it: tensors are immutable. Strings and
 * complex numbers go to the original kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { OriginalKernel, wrapWasmKernel } from './replace';

/** The part of the wasm backend used here. */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  incRef(dataId: tf.DataId): void;
}

function onHeap(dtype: tf.DataType): boolean {
  return dtype === 'float32' || dtype === 'int32' || dtype === 'bool';
}

/** A new output holding the block begin/size of x. */
function sliceOut(backend: WasmHeapBackend, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  if (size.some((d) => d === 0)) return out;
  // Views are taken after makeOutput, which may grow (and so replace) the heap buffer.
  copyBlock(backend.typedArrayFromHeap(x), x.shape, begin, size, backend.typedArrayFromHeap(out));
  return out;
}

/**
 * Copies the block `begin`/`size` of `src` (shape `shape`) into `dst`. Trailing axes that are taken
 * whole merge into one contiguous run, so a row slice is a single copy.
 */
export function copyBlock(src: Float32Array | Int32Array | Uint8Array, shape: number[], begin: number[], size: number[], dst: Float32Array | Int32Array | Uint8Array): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  // Innermost axis `inner` and everything after it form one run.
  let inner = rank - 1;
  let run = size[inner];
  while (inner > 0 && size[inner] === shape[inner] && begin[inner] === 0) {
    inner--;
    run *= size[inner];
  }
  const strides = new Array<number>(rank).fill(1);
  for (let a = rank - 2; a >= 0; a--) strides[a] = strides[a + 1] * shape[a + 1];
  const outer = size.slice(0, inner);
  const count = outer.reduce((p, d) => p * d, 1);
  const idx = new Array<number>(inner).fill(0);
  let out = 0;
  for (let r = 0; r < count; r++) {
    let off = begin[inner] * strides[inner];
    for (let a = 0; a < inner; a++) off += (begin[a] + idx[a]) * strides[a];
    dst.set(src.subarray(off, off + run), out);
    out += run;
    for (let a = inner - 1; a >= 0; a--) {
      if (++idx[a] < outer[a]) break;
      idx[a] = 0;
    }
  }
}

export function registerWasmSlicing(): void {
  wrapWasmKernel('Slice', (original: OriginalKernel) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (!onHeap(x.dtype)) return original(args);
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    return sliceOut(args.backend as unknown as WasmHeapBackend, x, b, s);
  });
  wrapWasmKernel('SplitV', (original: OriginalKernel) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (!onHeap(x.dtype)) return original(args);
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const a = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, a);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((n) => {
      const size = [...x.shape];
      size[a] = n;
      const out = sliceOut(args.backend as unknown as WasmHeapBackend, x, [...begin], size);
      begin[a] += n;
      return out;
    });
  });
  wrapWasmKernel('Unpack', (original: OriginalKernel) => (args) => {
    const x = args.inputs.value as tf.TensorInfo;
    if (!onHeap(x.dtype)) return original(args);
    let { axis } = args.attrs as unknown as { axis: number };
    if (axis < 0) axis += x.shape.length;
    const outShape = x.shape.filter((_, i) => i !== axis);
    const size = [...x.shape];
    size[axis] = 1;
    return Array.from({ length: x.shape[axis] }, (_, i) => {
      const begin = new Array<number>(x.shape.length).fill(0);
      begin[axis] = i;
      const out = sliceOut(args.backend as unknown as WasmHeapBackend, x, begin, size);
      return { dataId: out.dataId, dtype: out.dtype, shape: outShape };
    });
  });
  wrapWasmKernel('Identity', (original: OriginalKernel) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (!onHeap(x.dtype)) return original(args);
    (args.backend as unknown as WasmHeapBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
}
