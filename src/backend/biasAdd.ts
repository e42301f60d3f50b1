/**
 * x + bias over the last axis. On native TensorFlow this is TF's `BiasAdd` (and `BiasAddGrad` for the
 * bias gradient): specialised kernels ~2x faster than the general broadcasting add and sum tfjs issues
 * for the same thing (measured 0.45 vs 1.09 ms for [1024, 1280] + [1280]). Elsewhere a plain add.
 */
import * as tf from '@tensorflow/tfjs';

const KERNEL = 'SanaBiasAdd';
const GRAD_KERNEL = 'SanaBiasAddGrad';

/** The part of tfjs-node's backend used here. */
interface NativeBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_STRING: number; TF_FLOAT: number };
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.TensorInfo[]): tf.TensorInfo;
}

function nativeAttrs(backend: NativeBackend): unknown[] {
  return [
    { name: 'T', type: backend.binding.TF_ATTR_TYPE, value: backend.binding.TF_FLOAT },
    { name: 'data_format', type: backend.binding.TF_ATTR_STRING, value: 'NHWC' },
  ];
}

let registered = false;

/** Registers the native kernels and the gradient (once; called when the tensorflow backend starts). */
export function registerNativeBiasAdd(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as unknown as NativeBackend;
      return b.executeSingleOutput('BiasAdd', nativeAttrs(b), [inputs.x as tf.TensorInfo, inputs.bias as tf.TensorInfo]);
    },
  });
  tf.registerKernel({
    kernelName: GRAD_KERNEL,
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as unknown as NativeBackend;
      return b.executeSingleOutput('BiasAddGrad', nativeAttrs(b), [inputs.dy as tf.TensorInfo]);
    },
  });
  tf.registerGradient({
    kernelName: KERNEL,
    gradFunc: (dy) => ({
      x: () => dy as tf.Tensor,
      bias: () => tf.engine().runKernel(GRAD_KERNEL, { dy: dy as tf.Tensor }) as tf.Tensor,
    }),
  });
}

/** x [..., C] + bias [C]. */
export function biasAdd(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  const native = registered && tf.getBackend() === 'tensorflow' && x.dtype === 'float32' && bias.dtype === 'float32' && bias.rank === 1 && x.rank >= 2 && x.shape[x.rank - 1] === bias.shape[0];
  if (!native) return tf.add(x, bias);
  return tf.engine().runKernel(KERNEL, { x, bias }) as tf.Tensor;
}
