/**
 * LoRA against the reference: the golden cases through the runner, and LoRA files applied to a
 * transformer for sampling (`applyLoraFiles`) and baked into a checkpoint (`fuseLoraCheckpoint`).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../../src/backend';
import { loadCase, ioTensor, GoldenCase } from '../../src/golden/case';
import { compareTensor, toleranceFor } from '../../src/golden/compare';
import { toFloat32, writeSafetensors } from '../../src/io/safetensors';
import { loadSanaTransformer } from '../../src/io/pretrained/transformer';
import { loraFromFile, readLoraFile, saveLoraFile } from '../../src/io/lora';
import { SafetensorsFile } from '../../src/io/safetensors';
import { adaptableLayers } from '../../src/lora';
import { SanaTransformer2DModel, SanaTransformerInputs } from '../../src/models/dit';
import { applyLoraFiles } from '../../src/pipelines/loraLoading';
import { fuseLoraCheckpoint } from '../../src/pipelines/finetune';
import { tfToTorch } from '../../src/nn';
import { expectGoldenPass, expectNoLeak, goldenCase, useTestBackend } from '../helpers';

beforeAll(useTestBackend);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-lora-golden-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('golden lora_sana_tiny', () => expectGoldenPass('lora_sana_tiny'), 60000);
test('golden lora_sana_tiny_convs', () => expectGoldenPass('lora_sana_tiny_convs'), 60000);

/** The case's base transformer as a diffusers folder (config.json + diffusion_pytorch_model.safetensors). */
function transformerFolder(c: GoldenCase): string {
  const dir = path.join(tmp, `${c.name}-transformer`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(c.file('config.json'), path.join(dir, 'config.json'));
  fs.copyFileSync(c.file('model.safetensors'), path.join(dir, 'diffusion_pytorch_model.safetensors'));
  return dir;
}

function inputsOf(c: GoldenCase): SanaTransformerInputs {
  const t = (k: string) => tf.tensor(toFloat32(ioTensor(c, k), k), ioTensor(c, k).shape, 'float32');
  return {
    hiddenStates: tf.tidy(() => t('hidden_states').transpose([0, 2, 3, 1])) as Tensor4D,
    encoderHiddenStates: t('encoder_hidden_states') as Tensor3D,
    encoderAttentionMask: t('encoder_attention_mask') as Tensor2D,
    timestep: t('timestep') as Tensor1D,
  };
}

/** NCHW output of the model, checked against io tensor `name` with the case's tolerance for `tolName`. */
function expectOutput(c: GoldenCase, model: SanaTransformer2DModel, inputs: SanaTransformerInputs, name: string, tolName = name): void {
  const out = tf.tidy(() => model.forward(inputs).transpose([0, 3, 1, 2]));
  const r = compareTensor(name, out.dataSync() as Float32Array, ioTensor(c, name), toleranceFor(c.spec, tolName)!, out.shape);
  out.dispose();
  expect(r).toMatchObject({ ok: true });
}

test('applyLoraFiles: a file at its scale, several files add up, remove() restores the base exactly', () => {
  const c = loadCase(goldenCase('lora_sana_tiny_convs'));
  const model = loadSanaTransformer(transformerFolder(c));
  const inputs = inputsOf(c);
  const base = model.forward(inputs);
  const lora = c.file('lora.safetensors');
  const one = applyLoraFiles(model, [{ path: lora, scale: 0.5 }]);
  expectOutput(c, model, inputs, 'sample_lora_scale_half');
  one.remove();
  // 0.25 + 0.25 of the same adapter is the adapter at 0.5.
  const two = applyLoraFiles(model, [{ path: lora, scale: 0.25 }, { path: lora, scale: 0.25 }]);
  expectOutput(c, model, inputs, 'sample_lora_scale_half');
  two.remove();
  const zero = applyLoraFiles(model, [{ path: lora, scale: 0 }]);
  expect([...model.forward(inputs).dataSync()]).toEqual([...base.dataSync()]);
  zero.remove();
  expect([...model.forward(inputs).dataSync()]).toEqual([...base.dataSync()]);
  base.dispose();
  tf.dispose(Object.values(inputs));
  model.dispose();
});

test('applyLoraFiles: a file that does not fit is an error naming the file and every offending key; nothing is attached', () => {
  const c = loadCase(goldenCase('lora_sana_tiny'));
  const model = loadSanaTransformer(transformerFolder(c));
  const f32 = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const bad = path.join(tmp, 'bad.safetensors');
  writeSafetensors(bad, {
    'transformer.transformer_blocks.9.attn1.to_q.lora_A.weight': f32([2, 16]),
    'transformer.transformer_blocks.9.attn1.to_q.lora_B.weight': f32([16, 2]),
    'transformer.transformer_blocks.0.attn1.to_k.lora_A.weight': f32([2, 7]),
    'transformer.transformer_blocks.0.attn1.to_k.lora_B.weight': f32([16, 2]),
  });
  const good = c.file('lora.safetensors');
  let message = '';
  try {
    applyLoraFiles(model, [{ path: good, scale: 1 }, { path: bad, scale: 1 }]);
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message).toContain(bad);
  expect(message).toMatch(/transformer_blocks\.9\.attn1\.to_q: no such adaptable layer/);
  expect(message).toMatch(/transformer_blocks\.0\.attn1\.to_k: lora_A \[2,7\]/);
  for (const [, layer] of model.adapterTargets()) expect(layer.adapters).toHaveLength(0);
  model.dispose();
});

test('fuseLoraCheckpoint writes a plain transformer folder with the fused weights', () => {
  const c = loadCase(goldenCase('lora_sana_tiny'));
  const out = path.join(tmp, 'fused');
  const scale = c.spec.scales.fuse_lora_scale as number;
  const result = fuseLoraCheckpoint({ transformer: transformerFolder(c), loras: [{ path: c.file('lora.safetensors'), scale }], output: out });
  expect(result.layers).toBe(c.spec.targeted_modules.length);
  const fused = loadSanaTransformer(out);
  const params = new Map(fused.namedParameters());
  for (const key of [...c.io.keys()].filter((k) => k.startsWith('fused.'))) {
    const p = params.get(key.slice('fused.'.length))!;
    const t = tfToTorch(p.layout, p.value);
    expect(compareTensor(key, t.dataSync() as Float32Array, ioTensor(c, key), toleranceFor(c.spec, key)!)).toMatchObject({ ok: true });
    t.dispose();
  }
  const inputs = inputsOf(c);
  expectOutput(c, fused, inputs, 'sample_fused');
  tf.dispose(Object.values(inputs));
  fused.dispose();
});

test('a model with applied LoRA files leaks no tensors in forward', async () => {
  const c = loadCase(goldenCase('lora_sana_tiny'));
  const model = loadSanaTransformer(transformerFolder(c));
  const applied = applyLoraFiles(model, [{ path: c.file('lora.safetensors'), scale: 0.7 }]);
  const inputs = inputsOf(c);
  await expectNoLeak(() => model.forward(inputs).dispose());
  applied.remove();
  tf.dispose(Object.values(inputs));
  model.dispose();
});

test('saving the adapter read from a diffusers file writes the same keys, tensors and peft settings', () => {
  const c = loadCase(goldenCase('lora_sana_tiny_convs'));
  const model = loadSanaTransformer(transformerFolder(c));
  const read = readLoraFile(c.file('lora.safetensors'));
  const set = loraFromFile(read, adaptableLayers(model));
  const out = path.join(tmp, 'pytorch_lora_weights.safetensors');
  saveLoraFile(out, set, read.targetModules!);
  const ref = SafetensorsFile.open(c.file('lora.safetensors'));
  const ours = SafetensorsFile.open(out);
  expect(ours.keys().sort()).toEqual(ref.keys().sort());
  for (const k of ref.keys()) {
    expect(ours.info(k).shape).toEqual(ref.info(k).shape);
    expect([...ours.readFloat32(k)]).toEqual([...ref.readFloat32(k)]);
  }
  expect(ours.metadata.format).toBe('pt');
  const meta = JSON.parse(ours.metadata.lora_adapter_metadata);
  const refMeta = JSON.parse(ref.metadata.lora_adapter_metadata);
  for (const k of ['transformer.r', 'transformer.lora_alpha', 'transformer.target_modules', 'transformer.peft_type', 'transformer.init_lora_weights', 'transformer.use_dora', 'transformer.use_rslora']) expect(meta[k]).toEqual(refMeta[k]);
  ref.close();
  ours.close();
  set.dispose();
  model.dispose();
});
