/**
 * Shortcuts for the native TensorFlow backend (tfjs-node). Every kernel tfjs-node runs is a TensorFlow
 * eager op costing tens of microseconds however small its tensors, and tfjs' gradients issue many
 * no-op kernels: each broadcasting binary op's gradient reshapes to the shape it already has and casts
 * float32 to float32, and the engine copies (`Identity`) every tensor it saves for the backward pass.
 * Those are answered here by sharing the input's data, as the pure-JS backend does: tensors are
 * immutable, so a shared buffer is never written through either handle.
 *
 * The real reshapes, transposes, sums and means pass their shape/permutation/axes to TensorFlow as a
 * small int32 tensor, which tfjs-node creates, uploads and frees on every call (about half the
 * ~50 us of a reshape). Those constants are kept here per value instead, as backend data outside the
 * engine's tensor count.
 */
import * as tf from '@tensorflow/tfjs';
import { wrapKernel } from '../wrap';
import { NativeBackend, typeAttr } from './binding';

const int32Constants = new Map<string, tf.TensorInfo>();
/** A model has a few dozen distinct shapes and axes; past this many (many input sizes), new ones are not kept. */
const MAX_KEPT_CONSTANTS = 4096;

/**
 * An int32 vector on the backend: kept and shared while fewer than MAX_KEPT_CONSTANTS are kept (never
 * freed), otherwise a fresh one for this call; `release` frees it after the op in that case.
 */
function int32Constant(backend: NativeBackend, values: number[]): { info: tf.TensorInfo; release(): void } {
  const key = values.join(',');
  const kept = int32Constants.get(key);
  if (kept) return { info: kept, release: () => undefined };
  const info: tf.TensorInfo = { dataId: backend.write(Int32Array.from(values), [values.length], 'int32'), shape: [values.length], dtype: 'int32' };
  if (int32Constants.size < MAX_KEPT_CONSTANTS) {
    int32Constants.set(key, info);
    return { info, release: () => undefined };
  }
  return { info, release: () => void backend.disposeData(info.dataId) };
}

/** Runs op `name` on x and an int32 constant (shape, permutation or axes) as its second input. */
function withConstant(backend: NativeBackend, name: string, attrs: unknown[], x: tf.TensorInfo, values: number[]): tf.TensorInfo {
  const c = int32Constant(backend, values);
  try {
    return backend.executeSingleOutput(name, attrs, [x, c.info]);
  } finally {
    c.release();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The input itself as the output: its data gains a reference, so either can be disposed first. */
function share(x: tf.TensorInfo, backend: unknown): tf.TensorInfo {
  (backend as NativeBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export function registerTensorflowKernels(): void {
  wrapKernel('tensorflow', 'Reshape', (original) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const shape = (args.attrs as { shape: number[] }).shape;
    // A -1 can only stand for the size it already has when every other axis matches.
    const resolved = shape.map((d, i) => (d === -1 ? x.shape[i] : d));
    if (sameShape(resolved, x.shape)) return share(x, args.backend);
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return original(args);
    const b = args.backend as unknown as NativeBackend;
    return withConstant(b, 'Reshape', [typeAttr(b, 'T', x.dtype), typeAttr(b, 'Tshape', 'int32')], x, shape);
  });
  wrapKernel('tensorflow', 'Transpose', (original) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return original(args);
    const { perm } = args.attrs as { perm: number[] };
    const b = args.backend as unknown as NativeBackend;
    return withConstant(b, 'Transpose', [typeAttr(b, 'T', x.dtype), typeAttr(b, 'Tperm', 'int32')], x, perm);
  });
  for (const op of ['Sum', 'Mean'] as const) {
    wrapKernel('tensorflow', op, (original) => (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype !== 'float32') return original(args);
      const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
      const b = args.backend as unknown as NativeBackend;
      const attrs = [{ name: 'keep_dims', type: b.binding.TF_ATTR_BOOL, value: keepDims }, typeAttr(b, 'T', 'float32'), typeAttr(b, 'Tidx', 'int32')];
      return withConstant(b, op, attrs, x, tf.util.parseAxisParam(axis, x.shape));
    });
  }
  wrapKernel('tensorflow', 'Identity', (original) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return original(args);
    return share(x, args.backend);
  });
  wrapKernel('tensorflow', 'Cast', (original) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if ((args.attrs as { dtype: tf.DataType }).dtype === x.dtype) return share(x, args.backend);
    return original(args);
  });
}
