/**
 * The part of tfjs-node's backend (`NodeJSKernelBackend` and its binding) that this package calls
 * directly to run TensorFlow ops tfjs does not expose, and the registration of kernels built on it.
 */
import * as tf from '@tensorflow/tfjs';

export interface NativeBackend {
  binding: {
    TF_ATTR_TYPE: number;
    TF_ATTR_STRING: number;
    TF_ATTR_BOOL: number;
    TF_ATTR_SHAPE: number;
    TF_FLOAT: number;
    TF_INT32: number;
    /** Runs op `name` on binding-side tensor ids; returns the outputs' metadata (with their ids). */
    executeOp(name: string, attrs: unknown[], inputIds: number[], numOutputs: number): Array<{ id: number }>;
    deleteTensor(id: number): void;
  };
  write(values: Float32Array | Int32Array, shape: number[], dtype: tf.DataType): tf.DataId;
  disposeData(dataId: tf.DataId): boolean;
  incRef(dataId: tf.DataId): void;
  getInputTensorIds(inputs: tf.TensorInfo[]): number[];
  /** Registers an op output (binding metadata) as backend data. */
  createOutputTensor(metadata: unknown): tf.TensorInfo;
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.TensorInfo[]): tf.TensorInfo;
}

/** A `T`-style type attribute for float32 or int32. */
export function typeAttr(b: NativeBackend, name: string, dtype: tf.DataType): unknown {
  return { name, type: b.binding.TF_ATTR_TYPE, value: dtype === 'float32' ? b.binding.TF_FLOAT : b.binding.TF_INT32 };
}

/** Registers kernel `kernelName` for the tensorflow backend (once); `run` receives the native backend. */
export function registerNativeKernel(kernelName: string, run: (b: NativeBackend, inputs: Record<string, tf.TensorInfo>, attrs: tf.NamedAttrMap) => tf.TensorInfo | tf.TensorInfo[]): void {
  if (tf.getKernel(kernelName, 'tensorflow')) return;
  tf.registerKernel({ kernelName, backendName: 'tensorflow', kernelFunc: ({ inputs, attrs, backend }) => run(backend as unknown as NativeBackend, inputs as Record<string, tf.TensorInfo>, attrs ?? {}) });
}

/** Whether the current backend is native TensorFlow with kernel `kernelName` registered. */
export function nativeKernelActive(kernelName: string): boolean {
  return tf.getBackend() === 'tensorflow' && tf.getKernel(kernelName, 'tensorflow') !== undefined;
}
