/**
 * Golden runner: LoRA cases (peft adapters on diffusers `SanaTransformer2DModel`, the file written by
 * `SanaPipeline.save_lora_weights`). Loads the base transformer and `lora.safetensors` the way
 * `SanaPipeline.load_lora_weights` does (rank and alpha from the header metadata), then compares:
 * the base output, the outputs at runtime scale 1 and at the case's other scales
 * (`sample_lora_scale_<name>` at `scales.lora_scale_<name>` or `scales.<name>_lora_scale`), the loss
 * mean((sample_lora - target)^2) and its gradient with respect to every LoRA tensor (keys as in the
 * file, PyTorch layout), and finally the fused weights and the fused model's output.
 */
import * as fs from 'fs';
import { tf, Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../../backend';
import { tfToTorch, valueAndGrads } from '../../nn';
import { toFloat32 } from '../../io/safetensors';
import { loadSanaTransformer } from '../../io/pretrained/transformer';
import { loraFromFile, readLoraFile } from '../../io/lora';
import { adaptableLayers } from '../../lora';
import { SanaTransformer2DModel, SanaTransformerInputs, parseSanaTransformerConfig } from '../../models/dit';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, Tolerance, check, toleranceFor } from '../compare';
import { GoldenRunner, caseKind } from '../runner';

const OUTPUT_FALLBACK: Tolerance = { metric: 'allclose', atol: 1e-4, rtol: 1e-4 };
const GRAD_FALLBACK: Tolerance = { metric: 'per_tensor', atol: 1e-5, rtol: 2e-3 };
/** The prefix diffusers puts before the transformer's module paths in LoRA files. */
const FILE_PREFIX = 'transformer.';

function tensorOf(c: GoldenCase, key: string): Tensor {
  const t = ioTensor(c, key);
  return tf.tensor(toFloat32(t, key), t.shape, 'float32');
}

/** NCHW host tensor -> NHWC device tensor. */
function nhwc(c: GoldenCase, key: string): Tensor4D {
  return tf.tidy(() => tensorOf(c, key).transpose([0, 2, 3, 1]) as Tensor4D);
}

/** The runtime scale of `sample_lora_scale_<name>`: `scales.lora_scale_<name>` or `scales.<name>_lora_scale`. */
function scaleOf(c: GoldenCase, name: string): number {
  const scales = (c.spec.scales ?? {}) as Record<string, unknown>;
  const v = scales[`lora_scale_${name}`] ?? scales[`${name}_lora_scale`] ?? (name === 'half' ? 0.5 : undefined);
  if (typeof v !== 'number') throw new Error(`${c.name}: case.json scales has no value for sample_lora_scale_${name}`);
  return v;
}

function fuseScaleOf(c: GoldenCase): number {
  const v = (c.spec.scales ?? {}).fuse_lora_scale;
  if (typeof v !== 'number') throw new Error(`${c.name}: case.json scales.fuse_lora_scale is missing`);
  return v;
}

/** Model output as NCHW host data, compared with the io tensor `name`. */
function checkSample(c: GoldenCase, name: string, model: SanaTransformer2DModel, inputs: SanaTransformerInputs, fallback: Tolerance): CheckResult {
  const out = tf.tidy(() => model.forward(inputs).transpose([0, 3, 1, 2]));
  const result = check(c.spec, name, out.dataSync() as Float32Array, ioTensor(c, name), fallback, out.shape);
  out.dispose();
  return result;
}

function run(c: GoldenCase): CheckResult[] {
  const config = parseSanaTransformerConfig(c.config, c.file('config.json'));
  const model = loadSanaTransformer(c.file('model.safetensors'), { config });
  model.setTrainable(false);
  const lora = loraFromFile(readLoraFile(c.file('lora.safetensors')), adaptableLayers(model));
  const results: CheckResult[] = [];
  const inputs: SanaTransformerInputs = {
    hiddenStates: nhwc(c, 'hidden_states'),
    encoderHiddenStates: tensorOf(c, 'encoder_hidden_states') as Tensor3D,
    encoderAttentionMask: c.io.has('encoder_attention_mask') ? (tensorOf(c, 'encoder_attention_mask') as Tensor2D) : undefined,
    timestep: tensorOf(c, 'timestep') as Tensor1D,
  };
  const target = c.io.has('target') ? nhwc(c, 'target') : null;
  const loraTol = toleranceFor(c.spec, 'sample_lora') ?? OUTPUT_FALLBACK;
  try {
    // 1. The base model, before any adapter is attached.
    if (c.io.has('sample_base')) results.push(checkSample(c, 'sample_base', model, inputs, OUTPUT_FALLBACK));

    // 2. Adapters attached: scale 1, then every other runtime scale the case stores.
    lora.attach();
    lora.scale = 1;
    if (c.io.has('sample_lora')) results.push(checkSample(c, 'sample_lora', model, inputs, OUTPUT_FALLBACK));
    for (const key of [...c.io.keys()].filter((k) => k.startsWith('sample_lora_scale_'))) {
      lora.scale = scaleOf(c, key.slice('sample_lora_scale_'.length));
      results.push(checkSample(c, key, model, inputs, loraTol));
    }
    lora.scale = 1;

    // 3. Loss at scale 1 and gradients of the adapter tensors only (the base is frozen).
    if (target) {
      const params = lora.trainableParameters();
      const { value, grads } = valueAndGrads(() => tf.tidy(() => model.forward(inputs).sub(target).square().mean() as tf.Scalar), params);
      if (c.io.has('loss')) results.push(check(c.spec, 'loss', value.dataSync() as Float32Array, ioTensor(c, 'loss'), { metric: 'relative', atol: 0, rtol: 1e-4 }));
      value.dispose();
      const layouts = new Map(params.map(([k, p]) => [k, p.layout]));
      for (const key of [...c.io.keys()].filter((k) => k.startsWith('grad.'))) {
        const fileKey = key.slice('grad.'.length);
        const paramKey = fileKey.startsWith(FILE_PREFIX) ? fileKey.slice(FILE_PREFIX.length) : fileKey;
        const g = grads.get(paramKey);
        if (!g) {
          results.push({ tensor: key, ok: false, maxAbs: Infinity, allowed: 0, note: 'no LoRA tensor with this key was loaded' });
          continue;
        }
        const torch = tfToTorch(layouts.get(paramKey)!, g);
        results.push(check(c.spec, key, torch.dataSync() as Float32Array, ioTensor(c, key), GRAD_FALLBACK, torch.shape));
        torch.dispose();
      }
      for (const g of grads.values()) g.dispose();
    }

    // 4. Fused into the base weights at the case's fuse scale.
    const fusedKeys = [...c.io.keys()].filter((k) => k.startsWith('fused.'));
    if (fusedKeys.length || c.io.has('sample_fused')) {
      lora.fuse(fuseScaleOf(c));
      const params = new Map(model.namedParameters());
      for (const key of fusedKeys) {
        const p = params.get(key.slice('fused.'.length));
        if (!p) {
          results.push({ tensor: key, ok: false, maxAbs: Infinity, allowed: 0, note: 'the model has no parameter with this key' });
          continue;
        }
        const torch = tfToTorch(p.layout, p.value);
        results.push(check(c.spec, key, torch.dataSync() as Float32Array, ioTensor(c, key), OUTPUT_FALLBACK, torch.shape));
        torch.dispose();
      }
      if (c.io.has('sample_fused')) results.push(checkSample(c, 'sample_fused', model, inputs, loraTol));
    }
  } finally {
    lora.detach();
    lora.dispose();
    model.dispose();
    tf.dispose([inputs.hiddenStates, inputs.encoderHiddenStates, inputs.timestep]);
    inputs.encoderAttentionMask?.dispose();
    target?.dispose();
  }
  return results;
}

export const loraRunner: GoldenRunner = {
  id: 'lora',
  matches: (c) => fs.existsSync(c.file('lora.safetensors')) || /\bLoRA\b/.test(caseKind(c)),
  run: async (c) => run(c),
};
