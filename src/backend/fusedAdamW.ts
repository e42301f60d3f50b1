/**
 * One AdamW update of a weight and its two moments as a single kernel: here the native backend's
 * (TensorFlow), and the entry point `fusedAdamW` for every backend that registers the kernel (wasm:
 * kernels/wasm/adamW.ts, the element-wise rule's arithmetic exactly).
 *
 * On the native backend: the element-wise formulation issues ~14 full passes over the weights (~45
 * ms per step for 4M float32 values here, a tenth of a bench training step); TensorFlow's `ResourceApplyAdam` does
 * the moment and weight updates in one vectorised pass (~12 ms). It works on resource variables, so
 * the kernel wraps the three tensors in temporary variables, applies the update and reads them back;
 * TensorFlow copies a buffer before updating it in place whenever anything else still references it,
 * so the input tensors are never modified.
 *
 * TensorFlow's rule is AdamW's:
 *   w *= 1 - lr*wd  (a separate multiply, decay first as in torch)
 *   m += (g - m)(1 - beta1);  v += (g^2 - v)(1 - beta2)
 *   w -= alpha * m / (sqrt(v) + eps_hat)
 * and with alpha = lr*sqrt(1 - beta2^t)/(1 - beta1^t), eps_hat = eps*sqrt(1 - beta2^t) the last line is
 * torch's  w -= lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps).
 * Results differ from the element-wise rule in rounding, and in the moments' decay rate, which
 * TensorFlow forms in float32 (see below; as if beta2 were 0.99900001 instead of 0.999).
 */
import * as tf from '@tensorflow/tfjs';
import { NativeBackend, registerNativeKernel, typeAttr } from './kernels/tensorflow/binding';

/** The kernel's name; wasm registers its own (kernels/wasm/adamW.ts). */
export const ADAMW_KERNEL = 'SanaApplyAdamW';
const KERNEL = ADAMW_KERNEL;

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Step number, from 1. */
  t: number;
}

let variableCounter = 0;

function applyAdamW(b: NativeBackend, w: tf.TensorInfo, m: tf.TensorInfo, v: tf.TensorInfo, g: tf.TensorInfo, s: AdamWStep): tf.TensorInfo[] {
  const B = b.binding;
  const float = (name: string) => typeAttr(b, name, 'float32');
  const flag = (name: string, value: boolean) => ({ name, type: B.TF_ATTR_BOOL, value });
  const scalarInfos: tf.TensorInfo[] = [];
  const scalar = (x: number) => {
    const info: tf.TensorInfo = { dataId: b.write(Float32Array.of(x), [], 'float32'), shape: [], dtype: 'float32' };
    scalarInfos.push(info);
    return b.getInputTensorIds([info])[0];
  };
  // Resource handles stay binding-side ids; they never become tfjs tensors.
  const handles: number[] = [];
  const variable = () => {
    const [h] = B.executeOp('VarHandleOp', [
      { name: 'container', type: B.TF_ATTR_STRING, value: '' },
      { name: 'shared_name', type: B.TF_ATTR_STRING, value: `sana_adamw_${variableCounter++}` },
      float('dtype'),
      { name: 'shape', type: B.TF_ATTR_SHAPE, value: [-1] },
    ], [], 1);
    handles.push(h.id);
    return h.id;
  };
  const assign = (handle: number, valueId: number) => B.executeOp('AssignVariableOp', [float('dtype'), flag('validate_shape', false)], [handle, valueId], 0);
  try {
    const [wId, mId, vId, gId] = b.getInputTensorIds([w, m, v, g]);
    const [hw, hm, hv] = [variable(), variable(), variable()];
    if (s.weightDecay !== 0) {
      const [decayed] = B.executeOp('Mul', [float('T')], [wId, scalar(1 - s.lr * s.weightDecay)], 1);
      assign(hw, decayed.id);
      B.deleteTensor(decayed.id); // the variable now holds the only reference: updated without a copy
    } else {
      assign(hw, wId);
    }
    assign(hm, mId);
    assign(hv, vId);
    // TensorFlow decays the moments by 1 - beta, formed in float32 (for beta2 = 0.999 that is 1.3e-5
    // below 0.001). The bias corrections use the betas those decays amount to, in double precision,
    // and enter through the step size (TensorFlow gets beta powers of 0): the corrected moments then
    // agree with torch's to rounding, where float32 powers inside TensorFlow were ~1e-5 off.
    const effective = (beta: number) => 1 - Math.fround(1 - Math.fround(beta));
    const bc1 = 1 - effective(s.beta1) ** s.t;
    const bc2 = 1 - effective(s.beta2) ** s.t;
    const stepSize = (s.lr * Math.sqrt(bc2)) / bc1;
    const inputs = [hw, hm, hv, scalar(0), scalar(0), scalar(stepSize), scalar(s.beta1), scalar(s.beta2), scalar(s.eps * Math.sqrt(bc2)), gId];
    B.executeOp('ResourceApplyAdam', [float('T'), flag('use_locking', false), flag('use_nesterov', false)], inputs, 0);
    return [hw, hm, hv].map((h) => b.createOutputTensor(B.executeOp('ReadVariableOp', [float('dtype')], [h], 1)[0]));
  } finally {
    for (const h of handles) {
      B.executeOp('DestroyResourceOp', [flag('ignore_lookup_error', true)], [h], 0);
      B.deleteTensor(h);
    }
    for (const info of scalarInfos) b.disposeData(info.dataId);
  }
}

/** Registers the native kernel (called when the tensorflow backend starts). */
export function registerNativeAdamW(): void {
  registerNativeKernel(KERNEL, (b, inputs, attrs) => {
    const { w, m, v, g } = inputs as Record<'w' | 'm' | 'v' | 'g', tf.TensorInfo>;
    return applyAdamW(b, w, m, v, g, attrs as unknown as AdamWStep);
  });
}

/**
 * [w, m, v] after one AdamW step with gradient g (all float32, same shape) as one fused kernel, or
 * null where the current backend has none (the caller then runs the element-wise rule).
 */
export function fusedAdamW(w: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, step: AdamWStep): [tf.Tensor, tf.Tensor, tf.Tensor] | null {
  if (!tf.getKernel(KERNEL, tf.getBackend())) return null;
  if (![w, m, v, g].every((x) => x.dtype === 'float32' && tf.util.arraysEqual(x.shape, w.shape))) return null;
  return tf.engine().runKernel(KERNEL, { w, m, v, g }, step as unknown as tf.NamedAttrMap) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}
