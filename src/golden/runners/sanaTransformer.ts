/**
 * Golden runner: sana_transformer cases (diffusers `SanaTransformer2DModel` forward + backward).
 * Loads the case folder as a diffusers transformer folder, runs the forward pass on the io inputs
 * (NCHW latents converted to NHWC at the edge), the loss mean((sample - target)^2) and its gradient
 * with respect to every parameter; compares `sample`, `loss`, every `grad.<key>` (PyTorch layout) and
 * the `debug.*` intermediates the case stores.
 */
import * as fs from 'fs';
import { tf, Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../../backend';
import { tfToTorch, valueAndGrads } from '../../nn';
import { HostTensor, toFloat32 } from '../../io/safetensors';
import { loadSanaTransformer } from '../../io/pretrained/transformer';
import { parseSanaTransformerConfig } from '../../models/dit';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, Tolerance, check, toleranceFor } from '../compare';
import { GoldenRunner, configClass } from '../runner';

/** An io tensor on the device as float32 (masks are int32 on disk; the model takes any numeric mask). */
function tensorOf(c: GoldenCase, key: string): Tensor {
  const t = ioTensor(c, key);
  return tf.tensor(toFloat32(t, key), t.shape, 'float32');
}

/** NCHW host tensor -> NHWC device tensor. */
function nhwc(c: GoldenCase, key: string): Tensor4D {
  return tf.tidy(() => tensorOf(c, key).transpose([0, 2, 3, 1]) as Tensor4D);
}

function run(c: GoldenCase): CheckResult[] {
  const config = parseSanaTransformerConfig(c.config, c.file('config.json'));
  const model = loadSanaTransformer(c.dir, { config });
  const results: CheckResult[] = [];
  const sampleTol: Tolerance = toleranceFor(c.spec, 'sample') ?? { metric: 'allclose', atol: 1e-4, rtol: 1e-4 };
  const inputs = {
    hiddenStates: nhwc(c, 'hidden_states'),
    encoderHiddenStates: tensorOf(c, 'encoder_hidden_states') as Tensor3D,
    encoderAttentionMask: c.io.has('encoder_attention_mask') ? (tensorOf(c, 'encoder_attention_mask') as Tensor2D) : undefined,
    timestep: tensorOf(c, 'timestep') as Tensor1D,
    guidance: c.io.has('guidance') ? (tensorOf(c, 'guidance') as Tensor1D) : undefined,
  };
  const target = c.io.has('target') ? nhwc(c, 'target') : null;
  try {
    // 1. Forward with intermediates.
    const debug = new Map<string, { data: Float32Array; shape: number[] }>();
    const sample = model.forward(inputs, {
      onIntermediate: (name, t) => {
        if (c.io.has(`debug.${name}`)) debug.set(name, { data: t.dataSync() as Float32Array, shape: t.shape });
      },
    });
    const sampleNchw = sample.transpose([0, 3, 1, 2]);
    results.push(check(c.spec, 'sample', sampleNchw.dataSync() as Float32Array, ioTensor(c, 'sample'), sampleTol, sampleNchw.shape));
    sampleNchw.dispose();
    sample.dispose();
    // Intermediates come before the output in the computation; the case gives no tolerance of their
    // own, so the output's applies.
    for (const [name, got] of debug) results.push(check(c.spec, `debug.${name}`, got.data, ioTensor(c, `debug.${name}`), sampleTol, got.shape));

    // 2. Loss and gradients.
    if (target) {
      const params = model.namedParameters();
      const { value, grads } = valueAndGrads(() => tf.tidy(() => model.forward(inputs).sub(target).square().mean() as tf.Scalar), params);
      if (c.io.has('loss')) results.push(check(c.spec, 'loss', value.dataSync() as Float32Array, ioTensor(c, 'loss'), { metric: 'relative', atol: 0, rtol: 1e-4 }));
      value.dispose();
      const layouts = new Map(params.map(([k, p]) => [k, p.layout]));
      const gradTol: Tolerance = { metric: 'per_tensor', atol: 1e-5, rtol: 2e-3 };
      for (const key of [...c.io.keys()].filter((k) => k.startsWith('grad.'))) {
        const paramKey = key.slice('grad.'.length);
        const g = grads.get(paramKey);
        const ref: HostTensor = ioTensor(c, key);
        if (!g) {
          results.push({ tensor: key, ok: false, maxAbs: Infinity, allowed: 0, note: 'the model has no parameter with this key' });
          continue;
        }
        const torch = tfToTorch(layouts.get(paramKey)!, g);
        results.push(check(c.spec, key, torch.dataSync() as Float32Array, ref, gradTol, torch.shape));
        torch.dispose();
      }
      for (const g of grads.values()) g.dispose();
    }
  } finally {
    model.dispose();
    for (const t of Object.values(inputs)) t?.dispose();
    target?.dispose();
  }
  return results;
}

export const sanaTransformerRunner: GoldenRunner = {
  id: 'sana_transformer',
  matches: (c) => configClass(c) === 'SanaTransformer2DModel' && !fs.existsSync(c.file('lora.safetensors')),
  run: async (c) => run(c),
};
