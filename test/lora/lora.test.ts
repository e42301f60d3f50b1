import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf } from '../../src/backend';
import { Conv2d, Linear, Module, valueAndGrads } from '../../src/nn';
import { createLora, LoraTarget, selectTargets } from '../../src/lora';
import { loraFromFile, readLoraFile, saveLoraFile } from '../../src/io/lora';
import { writeSafetensors } from '../../src/io/safetensors';
import { expectNoLeak, useTestBackend } from '../helpers';

beforeAll(useTestBackend);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-lora-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A toy block with the layer names LoRA targets in SANA. */
class Attn extends Module {
  toQ = this.module('to_q', new Linear(6, 6));
  toK = this.module('to_k', new Linear(6, 6));
  toOut = this.moduleList('to_out', [new Linear(6, 6)]);
}
class Ff extends Module {
  convInverted = this.module('conv_inverted', new Conv2d(6, 8, 1));
  convDepth = this.module('conv_depth', new Conv2d(8, 8, 3, { padding: 1, groups: 8 }));
}
class Block extends Module {
  attn1 = this.module('attn1', new Attn());
  ff = this.module('ff', new Ff());
}
class Toy extends Module {
  blocks = this.moduleList('transformer_blocks', [new Block(), new Block()]);
  forward(x: tf.Tensor4D): tf.Tensor {
    return tf.tidy(() => {
      let h: tf.Tensor = x;
      for (const b of this.blocks) {
        h = b.attn1.toOut[0].forward(b.attn1.toQ.forward(h).add(b.attn1.toK.forward(h)));
        h = b.ff.convDepth.forward(b.ff.convInverted.forward(h)).slice([0, 0, 0, 0], [-1, -1, -1, 6]);
      }
      return h;
    });
  }
  layers(): Map<string, LoraTarget> {
    return new Map(this.namedModules().filter(([, m]) => m instanceof Linear || m instanceof Conv2d) as Array<[string, LoraTarget]>);
  }
}

const x = () => tf.randomNormal([2, 3, 3, 6], 0, 1, 'float32', 11) as tf.Tensor4D;

test('target selection matches by suffix, like peft, and by block range', () => {
  const toy = new Toy();
  const sel = selectTargets(toy.layers(), ['to_q', 'to_out.0', 'conv_inverted']);
  expect([...sel.keys()].sort()).toEqual([
    'transformer_blocks.0.attn1.to_out.0', 'transformer_blocks.0.attn1.to_q', 'transformer_blocks.0.ff.conv_inverted',
    'transformer_blocks.1.attn1.to_out.0', 'transformer_blocks.1.attn1.to_q', 'transformer_blocks.1.ff.conv_inverted',
  ]);
  expect([...selectTargets(toy.layers(), ['to_q'], { from: 1, to: 1 }).keys()]).toEqual(['transformer_blocks.1.attn1.to_q']);
});

test('a fresh LoRA (B = 0) and a LoRA at scale 0 leave the output unchanged exactly', () => {
  const toy = new Toy().initialize(1);
  const base = toy.forward(x()).dataSync().slice();
  const lora = createLora(selectTargets(toy.layers(), ['to_q', 'to_k', 'conv_inverted']), { rank: 2, alpha: 4, dropout: 0, init: 'gaussian' }, 5);
  expect([...toy.forward(x()).dataSync()]).toEqual([...base]);
  // Make B non-zero, then scale 0 must again give the base output.
  for (const [, l] of lora.entries()) l.loraB.assign(tf.onesLike(l.loraB.value));
  expect([...toy.forward(x()).dataSync()]).not.toEqual([...base]);
  lora.scale = 0;
  expect([...toy.forward(x()).dataSync()]).toEqual([...base]);
  lora.detach();
  toy.dispose();
  lora.dispose();
});

test('fused and unfused outputs agree, including 1x1 convolutions', () => {
  const toy = new Toy().initialize(2);
  const lora = createLora(selectTargets(toy.layers(), ['to_q', 'to_out.0', 'conv_inverted']), { rank: 3, alpha: 4.5, dropout: 0, init: 'gaussian' }, 6);
  for (const [, l] of lora.entries()) l.loraB.assign(tf.randomNormal(l.loraB.shape, 0, 0.3, 'float32', 9));
  lora.scale = 0.75;
  const unfused = toy.forward(x()).dataSync().slice();
  lora.fuse(0.75);
  const fused = toy.forward(x()).dataSync();
  let maxDiff = 0;
  for (let i = 0; i < fused.length; i++) maxDiff = Math.max(maxDiff, Math.abs(fused[i] - unfused[i]));
  expect(maxDiff).toBeLessThan(1e-5);
});

test('only adapter parameters get gradients', () => {
  const toy = new Toy().initialize(3);
  toy.setTrainable(false);
  const lora = createLora(selectTargets(toy.layers(), ['to_q']), { rank: 2, alpha: 2, dropout: 0, init: 'kaiming' }, 7);
  const { value, grads } = valueAndGrads(() => toy.forward(x()).square().mean() as tf.Scalar, lora.trainableParameters());
  expect([...grads.keys()].sort()).toEqual([
    'transformer_blocks.0.attn1.to_q.lora_A.weight', 'transformer_blocks.0.attn1.to_q.lora_B.weight',
    'transformer_blocks.1.attn1.to_q.lora_A.weight', 'transformer_blocks.1.attn1.to_q.lora_B.weight',
  ]);
  // B starts at zero, so A's gradient is zero and B's is not.
  expect(tf.abs(grads.get('transformer_blocks.0.attn1.to_q.lora_A.weight')!).max().dataSync()[0]).toBe(0);
  expect(tf.abs(grads.get('transformer_blocks.0.attn1.to_q.lora_B.weight')!).max().dataSync()[0]).toBeGreaterThan(0);
  value.dispose();
  grads.forEach((g) => g.dispose());
});

test('a saved LoRA file loads back with the same effect (diffusers key names and metadata)', () => {
  const toy = new Toy().initialize(4);
  const lora = createLora(selectTargets(toy.layers(), ['to_k', 'conv_inverted']), { rank: 2, alpha: 3, dropout: 0, init: 'gaussian' }, 8);
  for (const [, l] of lora.entries()) l.loraB.assign(tf.randomNormal(l.loraB.shape, 0, 0.3, 'float32', 10));
  const withLora = toy.forward(x()).dataSync().slice();
  const file = path.join(tmp, 'pytorch_lora_weights.safetensors');
  saveLoraFile(file, lora, ['to_k', 'conv_inverted']);
  lora.detach();
  const read = readLoraFile(file);
  expect(read.layers.map((l) => l.path)).toContain('transformer_blocks.0.ff.conv_inverted');
  expect(read.layers[0].alpha).toBe(3);
  expect(read.layers.find((l) => l.path.endsWith('conv_inverted'))!.a.shape).toEqual([2, 6, 1, 1]);
  const loaded = loraFromFile(read, toy.layers()).attach();
  expect([...toy.forward(x()).dataSync()]).toEqual([...withLora]);
  loaded.detach();
});

test('unknown keys, rank mismatches and layers the model lacks are errors listing the keys', () => {
  const toy = new Toy().initialize(5);
  const f32 = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const bad1 = path.join(tmp, 'bad1.safetensors');
  writeSafetensors(bad1, { 'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight': f32([2, 6]), 'transformer.transformer_blocks.0.attn1.to_q.lora_B.weight': f32([6, 3]), 'transformer.something.else': f32([1]) });
  expect(() => readLoraFile(bad1)).toThrow(/unknown keys.*something\.else/);
  const bad2 = path.join(tmp, 'bad2.safetensors');
  writeSafetensors(bad2, { 'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight': f32([2, 6]), 'transformer.transformer_blocks.0.attn1.to_q.lora_B.weight': f32([6, 3]) });
  expect(() => readLoraFile(bad2)).toThrow(/rank mismatch/);
  const bad3 = path.join(tmp, 'bad3.safetensors');
  writeSafetensors(bad3, {
    'transformer.transformer_blocks.7.attn1.to_q.lora_A.weight': f32([2, 6]), 'transformer.transformer_blocks.7.attn1.to_q.lora_B.weight': f32([6, 2]),
    'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight': f32([2, 5]), 'transformer.transformer_blocks.0.attn1.to_q.lora_B.weight': f32([6, 2]),
  });
  expect(() => loraFromFile(readLoraFile(bad3), toy.layers())).toThrow(/transformer_blocks\.7\.attn1\.to_q: no such adaptable layer/);
  expect(() => loraFromFile(readLoraFile(bad3), toy.layers())).toThrow(/transformer_blocks\.0\.attn1\.to_q: lora_A \[2,5\]/);
});

test('files without metadata use alpha = r (or stored .alpha tensors)', () => {
  const f32 = (shape: number[], v = 0) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v) });
  const file = path.join(tmp, 'nometa.safetensors');
  writeSafetensors(file, { 'transformer_blocks.0.attn1.to_q.lora_A.weight': f32([4, 6]), 'transformer_blocks.0.attn1.to_q.lora_B.weight': f32([6, 4]) });
  expect(readLoraFile(file).layers[0].alpha).toBe(4);
  const withAlpha = path.join(tmp, 'alpha.safetensors');
  writeSafetensors(withAlpha, { 'transformer_blocks.0.attn1.to_q.lora_A.weight': f32([4, 6]), 'transformer_blocks.0.attn1.to_q.lora_B.weight': f32([6, 4]), 'transformer_blocks.0.attn1.to_q.alpha': f32([], 8) });
  expect(readLoraFile(withAlpha).layers[0].alpha).toBe(8);
});

test('LoRA forward leaks no tensors', async () => {
  const toy = new Toy().initialize(6);
  createLora(selectTargets(toy.layers(), ['to_q', 'conv_inverted']), { rank: 2, alpha: 2, dropout: 0.1, init: 'kaiming' }, 1);
  const input = x();
  await expectNoLeak(() => toy.forward(input).dispose());
});

test('rank_pattern / alpha_pattern of the metadata apply per layer by peft\'s suffix rule', () => {
  const f32 = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const meta = { 'transformer.r': 4, 'transformer.lora_alpha': 4, 'transformer.rank_pattern': { 'attn1.to_q': 2 }, 'transformer.alpha_pattern': { 'to_q': 6 } };
  const file = path.join(tmp, 'patterns.safetensors');
  writeSafetensors(file, {
    'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight': f32([2, 6]), 'transformer.transformer_blocks.0.attn1.to_q.lora_B.weight': f32([6, 2]),
    'transformer.transformer_blocks.0.attn1.to_k.lora_A.weight': f32([4, 6]), 'transformer.transformer_blocks.0.attn1.to_k.lora_B.weight': f32([6, 4]),
  }, { format: 'pt', lora_adapter_metadata: JSON.stringify(meta) });
  const layers = new Map(readLoraFile(file).layers.map((l) => [l.path.split('.').pop(), l]));
  expect(layers.get('to_q')).toMatchObject({ rank: 2, alpha: 6 });
  expect(layers.get('to_k')).toMatchObject({ rank: 4, alpha: 4 });
  const wrong = path.join(tmp, 'wrong-rank.safetensors');
  writeSafetensors(wrong, {
    'transformer.transformer_blocks.0.attn1.to_k.lora_A.weight': f32([2, 6]), 'transformer.transformer_blocks.0.attn1.to_k.lora_B.weight': f32([6, 2]),
  }, { format: 'pt', lora_adapter_metadata: JSON.stringify(meta) });
  expect(() => readLoraFile(wrong)).toThrow(/transformer_blocks\.0\.attn1\.to_k: rank 2 in the tensors but 4 in the metadata/);
});

test('rsLoRA files scale by alpha / sqrt(r); DoRA files are refused by name', () => {
  const f32 = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const tensors = { 'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight': f32([4, 6]), 'transformer.transformer_blocks.0.attn1.to_q.lora_B.weight': f32([6, 4]) };
  const rs = path.join(tmp, 'rslora.safetensors');
  writeSafetensors(rs, tensors, { format: 'pt', lora_adapter_metadata: JSON.stringify({ 'transformer.r': 4, 'transformer.lora_alpha': 8, 'transformer.use_rslora': true }) });
  const layer = readLoraFile(rs).layers[0];
  expect(layer.alpha / layer.rank).toBeCloseTo(8 / Math.sqrt(4), 12);
  const dora = path.join(tmp, 'dora.safetensors');
  writeSafetensors(dora, tensors, { format: 'pt', lora_adapter_metadata: JSON.stringify({ 'transformer.r': 4, 'transformer.use_dora': true }) });
  expect(() => readLoraFile(dora)).toThrow(/dora\.safetensors: DoRA adapters \(use_dora: true\) are not supported/);
});
