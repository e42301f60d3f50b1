/**
 * `runFinetune` end to end on a tiny real setup (PNG + caption pairs, a tiny pretrained transformer in
 * pixel space, the tiny Gemma-2 of the golden pipeline case): only the adapters train, the base
 * weights stay bit-identical, the adapter file loads back, and resume matches an uninterrupted run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as YAML from 'yaml';
import { goldenCase, useTestBackend } from '../helpers';
import { loadTrainConfig } from '../../src/config/train';
import { runTraining } from '../../src/pipelines/train';
import { LORA_WEIGHTS_NAME, attachTrainingLora, runFinetune, selectLoraTargets } from '../../src/pipelines/finetune';
import { SanaTransformer2DModel, sanaTransformerPreset } from '../../src/models/dit';
import { loadSanaTransformer, saveSanaTransformer } from '../../src/io/pretrained/transformer';
import { loraFromFile, readLoraFile } from '../../src/io/lora';
import { SafetensorsFile } from '../../src/io/safetensors';
import { adaptableLayers } from '../../src/lora';
import { RunFolder } from '../../src/training/runFolder';
import { buildProgram } from '../../src/cli/main';
import { registerFinetune, FinetuneCommandOptions } from '../../src/cli/commands/finetune';
import { registerFuse, FuseCommandOptions } from '../../src/cli/commands/fuse';
import { Command } from 'commander';

beforeAll(useTestBackend);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-finetune-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const tinyConfig = () => sanaTransformerPreset('tiny', { ...sanaTransformerPreset('tiny'), in_channels: 3, out_channels: 3, caption_channels: 8 } as never);

async function makeDataset(dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const colours = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]];
  for (let i = 0; i < colours.length; i++) {
    const [r, g, b] = colours[i];
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r, g, b } } }).png().toFile(path.join(dir, `img${i}.png`));
    fs.writeFileSync(path.join(dir, `img${i}.txt`), `a ${['red', 'green', 'blue', 'yellow'][i]} square`);
  }
}

function writeConfig(name: string, base: string, data: string, out: string, lora: Record<string, unknown>): string {
  const file = path.join(root, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify({
    output_dir: out,
    seed: 5,
    model: { pretrained: base },
    text_encoder: { pretrained: goldenCase('sana_pipeline_tiny/text_encoder'), max_length: 12, complex_human_instruction: false },
    data: { path: data, resolution: 16, batch_size: 2, caption_dropout: 0.25, cache_dir: path.join(root, 'cache') },
    optimizer: { type: 'adamw', lr: 1e-2 },
    train: { steps: 4, log_every: 1 },
    checkpoint: { every: 2, keep_last: 2 },
    lora,
  }));
  return file;
}

let base = '';
let data = '';
beforeAll(async () => {
  base = path.join(root, 'base', 'transformer');
  const model = new SanaTransformer2DModel(tinyConfig()).initialize(1);
  saveSanaTransformer(model, base);
  model.dispose();
  data = path.join(root, 'data');
  await makeDataset(data);
});

const trajectory = (run: string) => RunFolder.open(run).readLog().map((r) => [r.step, r.loss, r.grad_norm]);

test('only the adapters train: base bit-identical, optimizer state and checkpoint hold LoRA keys only', async () => {
  const cfg = loadTrainConfig(writeConfig('a', path.dirname(base), data, path.join(root, 'a'), { rank: 2, alpha: 4, convs: true, dropout: 0.1 }));
  let before: Map<string, { data: Float32Array }> | null = null;
  let after: Map<string, { data: Float32Array }> | null = null;
  let trainedKeys: string[] = [];
  const result = await runTraining({
    config: { ...cfg, model: { ...cfg.model, pretrained: base } },
    configText: '',
    trainable: (m) => {
      before = m.stateDict();
      const sel = attachTrainingLora(m as SanaTransformer2DModel, cfg.lora!, cfg.seed);
      trainedKeys = sel.params.map(([k]) => k);
      return { ...sel, dispose: () => { after = m.stateDict(); sel.dispose(); } };
    },
  });
  expect(result.step).toBe(4);
  expect(trainedKeys.every((k) => /\.lora_[AB]\.weight$/.test(k))).toBe(true);
  expect(trainedKeys).toContain('transformer_blocks.0.ff.conv_point.lora_B.weight');
  expect(trainedKeys).toContain('transformer_blocks.1.attn2.to_out.0.lora_A.weight');
  for (const [k, v] of before!) expect(Buffer.from(after!.get(k)!.data.buffer).equals(Buffer.from(v.data.buffer))).toBe(true);
  const ck = result.checkpoint!;
  expect(fs.existsSync(path.join(ck, 'transformer'))).toBe(false);
  const opt = SafetensorsFile.open(path.join(ck, 'optimizer.safetensors'));
  expect(opt.keys().length).toBeGreaterThan(0);
  expect(opt.keys().every((k) => k.includes('.lora_A.weight') || k.includes('.lora_B.weight'))).toBe(true);
  opt.close();
  // The adapter file: diffusers keys and metadata; it loads onto the base and has learned something.
  const file = readLoraFile(path.join(ck, LORA_WEIGHTS_NAME));
  expect(file.settings).toMatchObject({ rank: 2, alpha: 4 });
  expect(file.targetModules).toEqual(['to_q', 'to_k', 'to_v', 'to_out.0', 'conv_inverted', 'conv_point']);
  const raw = SafetensorsFile.open(path.join(ck, LORA_WEIGHTS_NAME));
  expect(raw.keys()).toContain('transformer.transformer_blocks.0.attn1.to_q.lora_A.weight');
  raw.close();
  expect(file.layers.some((l) => l.b.data.some((v) => v !== 0))).toBe(true);
  const model = loadSanaTransformer(base);
  loraFromFile(file, adaptableLayers(model)).dispose();
  model.dispose();
}, 300000);

test('4 steps straight == 2 steps + resume + 2 steps; the final adapter is copied to the run folder', async () => {
  const lora = { rank: 2, alpha: 2, dropout: 0.2, init: 'kaiming', target_modules: ['to_q', 'to_v'], caption_projection: true, blocks: [1, 1] };
  const straight = path.join(root, 'straight');
  const cfgA = loadTrainConfig(writeConfig('s', path.dirname(base), data, straight, lora));
  const a = await runFinetune({ config: cfgA, configText: YAML.stringify(cfgA) });
  expect(a.loraFile).toBe(path.join(straight, LORA_WEIGHTS_NAME));
  const resumed = path.join(root, 'resumed');
  const cfgB = loadTrainConfig(writeConfig('r', path.dirname(base), data, resumed, lora));
  expect((await runFinetune({ config: cfgB, configText: YAML.stringify(cfgB), stopAt: 2 })).step).toBe(2);
  expect((await runFinetune({ config: cfgB, configText: YAML.stringify(cfgB), resume: 'latest' })).step).toBe(4);
  expect(trajectory(resumed)).toEqual(trajectory(straight));
  const fa = readLoraFile(a.loraFile!);
  const fb = readLoraFile(path.join(resumed, LORA_WEIGHTS_NAME));
  expect(fa.layers.map((l) => l.path)).toEqual([
    'caption_projection.linear_1', 'caption_projection.linear_2',
    'transformer_blocks.1.attn1.to_q', 'transformer_blocks.1.attn1.to_v', 'transformer_blocks.1.attn2.to_q', 'transformer_blocks.1.attn2.to_v',
  ]);
  // With a block range the file names the exact modules, so peft rebuilds exactly these layers.
  expect(fa.targetModules).toEqual(expect.arrayContaining(['transformer_blocks.1.attn1.to_q', 'caption_projection.linear_1']));
  fa.layers.forEach((l, i) => expect([...l.b.data]).toEqual([...fb.layers[i].b.data]));
}, 300000);

test('config errors name the field', async () => {
  const model = new SanaTransformer2DModel(tinyConfig());
  expect(() => selectLoraTargets(model, { rank: 2, alpha: null, dropout: 0, init: 'gaussian', target_modules: ['to_q', 'to_qq'], convs: false, caption_projection: false, blocks: null, init_seed: null })).toThrow(/match no adaptable layer.*to_qq/);
  const noLora = loadTrainConfig(writeConfig('n', base, data, path.join(root, 'n'), {}), ['lora=~']);
  await expect(runFinetune({ config: noLora, configText: '' })).rejects.toThrow(/lora: a lora section is required/);
  await expect(runTraining({ config: loadTrainConfig(writeConfig('t', base, data, path.join(root, 't'), { rank: 2 })), configText: '' })).rejects.toThrow(/sana finetune/);
  expect(() => loadTrainConfig(writeConfig('b', base, data, path.join(root, 'b'), { rank: 0 }))).toThrow(/lora\.rank: expected an integer >= 1, got 0/);
  expect(() => loadTrainConfig(writeConfig('c', base, data, path.join(root, 'c'), { blocks: [3, 1] }))).toThrow(/lora\.blocks: expected \[first, last\] with first <= last/);
  expect(() => loadTrainConfig(writeConfig('d', base, data, path.join(root, 'd'), { rank: 2, targets: ['to_q'] }))).toThrow(/lora\.targets/);
});

test('CLI: finetune and fuse parse argv into typed options', async () => {
  const seen: unknown[] = [];
  const program = new Command().exitOverride();
  registerFinetune(program, async (o: FinetuneCommandOptions) => void seen.push(o));
  registerFuse(program, async (o: FuseCommandOptions) => void seen.push(o));
  await program.parseAsync(['finetune', '-c', 'x.yaml', '--set', 'lora.rank=8', '--resume', 'latest', '--stop-at', '3'], { from: 'user' });
  await program.parseAsync(['fuse', '-t', 'base', '--lora', 'a.safetensors:0.5', '--lora', 'b.safetensors', '-o', 'out'], { from: 'user' });
  expect(seen).toEqual([
    { config: 'x.yaml', set: ['lora.rank=8'], resume: 'latest', backend: null, stopAt: 3 },
    { transformer: 'base', loras: [{ path: 'a.safetensors', scale: 0.5 }, { path: 'b.safetensors', scale: 1 }], output: 'out', backend: null },
  ]);
  expect(buildProgram().commands.map((c) => c.name())).toEqual(expect.arrayContaining(['finetune', 'fuse']));
});

test('validation runs with adapter dropout off, training resumes with it on', async () => {
  const model = new SanaTransformer2DModel(tinyConfig()).initialize(2);
  const sel = attachTrainingLora(model, { ...loadTrainConfig(writeConfig('drop', base, data, path.join(root, 'drop'), { rank: 2, dropout: 0.5 })).lora! }, 3);
  try {
    expect(sel.adapters.training).toBe(true);
    const during = await sel.evaluating!(async () => sel.adapters.training);
    expect(during).toBe(false);
    expect(sel.adapters.training).toBe(true);
  } finally {
    sel.dispose();
    model.dispose();
  }
});
