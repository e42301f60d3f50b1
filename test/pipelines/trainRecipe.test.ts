/**
 * The pieces the Fashion-MNIST recipe adds to `runTraining`: a seeded random text encoder, one-channel
 * data, validation grids (flow: prompts x seeds; autoencoder: originals over reconstructions), the
 * autoencoder's estimated scaling factor, and opening a flow checkpoint as a pipeline.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as YAML from 'yaml';
import { tf } from '../../src/backend';
import { useTestBackend } from '../helpers';
import { loadTrainConfig } from '../../src/config/train';
import { runTraining } from '../../src/pipelines/train';
import { openCheckpointPipeline, textEncoderSource } from '../../src/pipelines/trainComponents';
import { loadRunCheckpoint } from '../../src/io/pretrained/pipeline';
import { generateImages } from '../../src/pipelines/textToImage';
import { imageGrid } from '../../src/pipelines/trainValidation';
import { readJsonFile } from '../../src/io/json';

beforeAll(useTestBackend);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-train-recipe-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const TINY_GEMMA = { vocab_size: 256000, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 1, num_key_value_heads: 1, head_dim: 8, query_pre_attn_scalar: 8, sliding_window: 8 };

async function makeDataset(dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 4; i++) {
    const v = 40 + 60 * i;
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: v, g: v, b: v } } }).png().toFile(path.join(dir, `img${i}.png`));
    fs.writeFileSync(path.join(dir, `img${i}.txt`), `a square of grey level ${i}`);
  }
}

function writeConfig(name: string, body: Record<string, unknown>): string {
  const file = path.join(root, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify(body));
  return file;
}

test('grid layout: cells row-major with 2-pixel gaps', () => {
  const cell = (v: number) => ({ width: 2, height: 1, channels: 1 as const, pixels: new Uint8Array([v, v]) });
  const g = imageGrid([cell(1), cell(2), cell(3)], 2);
  expect([g.width, g.height]).toEqual([6, 4]);
  expect(Array.from(g.pixels)).toEqual([1, 1, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0]);
});

test('a seeded random text encoder is rebuilt identically; a flow run writes validation grids; its checkpoint opens as a pipeline', async () => {
  const data = path.join(root, 'data');
  await makeDataset(data);
  const out = path.join(root, 'flow');
  const cfg = loadTrainConfig(writeConfig('flow', {
    output_dir: out,
    seed: 1,
    model: { preset: 'tiny', config: { in_channels: 1, out_channels: 1, caption_channels: 8, sample_size: 8, patch_size: 2 } },
    text_encoder: { config: TINY_GEMMA, init_seed: 5, max_length: 8, complex_human_instruction: false },
    data: { path: data, resolution: 8, channels: 1, batch_size: 2 },
    optimizer: { type: 'adamw', lr: 1e-3 },
    train: { steps: 2, log_every: 1, ema_decay: 0.9 },
    checkpoint: { every: 2 },
    validation: { every: 2, prompts: ['a', 'b'], images_per_prompt: 3, steps: 2, guidance_scale: 2 },
  }));

  // 1. Same config and seed, same weights (checkpoints need not carry the encoder).
  const src = textEncoderSource(cfg);
  const [m1, m2] = [src.load(), src.load()];
  const w1 = m1.stateDict().get('layers.0.self_attn.q_proj.weight')!.data;
  expect(Array.from(m2.stateDict().get('layers.0.self_attn.q_proj.weight')!.data)).toEqual(Array.from(w1));
  expect(m1.trainableParameters()).toHaveLength(0);
  m1.dispose();
  m2.dispose();

  // 2. Training with a validation grid at step 2: 2 prompt rows x 3 seeds of 8x8 grey images.
  const result = await runTraining({ config: cfg, configText: YAML.stringify(cfg) });
  const grid = path.join(out, 'samples', 'step-00000002.png');
  const meta = await sharp(grid).metadata();
  expect([meta.width, meta.height]).toEqual([3 * 8 + 2 * 2, 2 * 8 + 2]);

  // 3. The checkpoint as a pipeline: same images from the same seeds.
  const pipe = openCheckpointPipeline(result.checkpoint!);
  try {
    expect(pipe.components.vae).toBeNull();
    const gen = () => generateImages(pipe.components, { prompts: ['a'], steps: 2, seed: 0, height: 8, width: 8, guidanceScale: 2 });
    // The first call loads the text encoder (its weights stay until dispose).
    const a = await gen();
    const before = tf.memory().numTensors;
    const b = await gen();
    expect(Array.from(b.images[0].pixels)).toEqual(Array.from(a.images[0].pixels));
    expect(tf.memory().numTensors).toBe(before);
  } finally {
    pipe.dispose();
  }
  expect(() => openCheckpointPipeline(data)).toThrow(/not a training checkpoint/);

  // 4. `sana sample`'s loader opens the same run (seeded encoder, EMA weights) to the same weights.
  const viaRun = loadRunCheckpoint(out);
  const viaTrain = openCheckpointPipeline(result.checkpoint!);
  try {
    expect(viaRun.source).toEqual({ kind: 'checkpoint', path: result.checkpoint, step: 2, ema: true });
    const key = 'proj_out.weight';
    expect(Array.from(viaRun.transformer.stateDict().get(key)!.data)).toEqual(Array.from(viaTrain.components.transformer.stateDict().get(key)!.data));
    const enc = viaRun.loadTextEncoder();
    expect(Array.from(enc.stateDict().get('layers.0.self_attn.q_proj.weight')!.data)).toEqual(Array.from(w1));
    enc.dispose();
    const raw = loadRunCheckpoint(out, { ema: false });
    expect(raw.source.ema).toBe(false);
    expect(Array.from(raw.transformer.stateDict().get(key)!.data)).not.toEqual(Array.from(viaRun.transformer.stateDict().get(key)!.data));
    raw.dispose();
  } finally {
    viaRun.dispose();
    viaTrain.dispose();
  }
}, 120_000);

test('an autoencoder run writes reconstruction grids and a scaling factor estimated from its latents', async () => {
  const data = path.join(root, 'data-ae');
  await makeDataset(data);
  const out = path.join(root, 'ae');
  const cfg = loadTrainConfig(writeConfig('ae', {
    task: 'autoencoder',
    output_dir: out,
    model: {
      config: {
        in_channels: 1, latent_channels: 2, encoder_block_types: 'ResBlock', decoder_block_types: 'ResBlock',
        encoder_block_out_channels: [4, 8], decoder_block_out_channels: [4, 8], encoder_layers_per_block: [1, 1], decoder_layers_per_block: [1, 1],
        encoder_qkv_multiscales: [[], []], decoder_qkv_multiscales: [[], []], downsample_block_type: 'conv', upsample_block_type: 'interpolate',
      },
    },
    data: { path: data, resolution: 8, channels: 1, batch_size: 2 },
    optimizer: { type: 'adamw', lr: 1e-3 },
    train: { steps: 1, log_every: 1, estimate_scaling_factor: true },
    validation: { every: 1, images: 3 },
  }));
  const result = await runTraining({ config: cfg, configText: YAML.stringify(cfg) });
  const meta = await sharp(path.join(out, 'samples', 'step-00000001.png')).metadata();
  expect([meta.width, meta.height]).toEqual([3 * 8 + 2 * 2, 2 * 8 + 2]);
  const scaling = readJsonFile(path.join(result.checkpoint!, 'vae', 'config.json')).scaling_factor;
  expect(scaling).toBeGreaterThan(0);
  expect(scaling).not.toBe(1);
}, 60_000);
