/**
 * x + bias over the last axis. On native TensorFlow this is TF's `BiasAdd` (and `BiasAddGrad` for the
 * bias gradient): specialised kernels ~2x faster than the general broadcasting add and sum tfjs issues
 * for the same thing (measured 0.45 vs 1.09 ms for [1024, 1280] + [1280]). Elsewhere a plain add.
 */
import * as tf from '@tensorflow/tfjs';
import { NativeBackend, nativeKernelActive, registerNativeKernel, typeAttr } from './kernels/tensorflow/binding';

const KERNEL = 'SanaBiasAdd';
const GRAD_KERNEL = 'SanaBiasAddGrad';

function nativeAttrs(b: NativeBackend): unknown[] {
  return [typeAttr(b, 'T', 'float32'), { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' }];
}

/** Registers the native kernels and the gradient (called when the tensorflow backend starts). */
export function registerNativeBiasAdd(): void {
  if (tf.getKernel(KERNEL, 'tensorflow')) return; // the gradient is registered once too
  registerNativeKernel(KERNEL, (b, inputs) => b.executeSingleOutput('BiasAdd', nativeAttrs(b), [inputs.x, inputs.bias]));
  registerNativeKernel(GRAD_KERNEL, (b, inputs) => b.executeSingleOutput('BiasAddGrad', nativeAttrs(b), [inputs.dy]));
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
  const native = nativeKernelActive(KERNEL) && x.dtype === 'float32' && bias.dtype === 'float32' && bias.rank === 1 && x.rank >= 2 && x.shape[x.rank - 1] === bias.shape[0];
  if (!native) return tf.add(x, bias);
  return tf.engine().runKernel(KERNEL, { x, bias }) as tf.Tensor;
}
