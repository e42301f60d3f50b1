/**
 * Shortcuts for the native TensorFlow backend (tfjs-node). Every kernel tfjs-node runs is a TensorFlow
 * eager op costing tens of microseconds however small its tensors, and tfjs' gradients issue many
 * no-op kernels: each broadcasting binary op's gradient reshapes to the shape it already has and casts
 * float32 to float32, and the engine copies (`Identity`) every tensor it saves for the backward pass.
 * Those are answered here by sharing the input's data, as the pure-JS backend does: tensors are
 * immutable, so a shared buffer is never written through either handle.
 */
import * as tf from '@tensorflow/tfjs';
import { wrapKernel } from '../wrap';

/** The part of tfjs-node's backend used here. */
interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The input itself as the output: its data gains a reference, so either can be disposed first. */
function share(x: tf.TensorInfo, backend: unknown): tf.TensorInfo {
  (backend as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export function registerTensorflowKernels(): void {
  wrapKernel('tensorflow', 'Reshape', (original) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const shape = (args.attrs as { shape: number[] }).shape;
    // A -1 can only stand for the size it already has when every other axis matches.
    const resolved = shape.map((d, i) => (d === -1 ? x.shape[i] : d));
    if (sameShape(resolved, x.shape)) return share(x, args.backend);
    return original(args);
  });
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
