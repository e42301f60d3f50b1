/**
 * The Fashion-MNIST LoRA recipe (`configs/fashion-mnist/finetune-lora.yaml`): teach a pretrained
 * Fashion-MNIST DiT a new concept, the token `sks` bound to colour-inverted images (white background,
 * dark garment), and measure that the concept appears after fine-tuning and not before.
 *
 *   node bin/run-ts.js scripts/fashion-mnist-lora.ts data  [--src DIR] [--out DIR] [--class NAME] [--concept N] [--regular N] [--others N]
 *   node bin/run-ts.js scripts/fashion-mnist-lora.ts base  --text-encoder DIR [--out DIR] [--steps N]
 *   node bin/run-ts.js scripts/fashion-mnist-lora.ts eval  --checkpoint DIR [--lora FILE[:SCALE]] [--out PNG] [--class NAME]
 *
 * `data` writes the fine-tuning set: N images of one class inverted and captioned "a photo of a sks
 * <class>", plus ordinary images of the same class and of the other classes with their usual caption
 * (so the adapter learns the token, not "every image is inverted"). `base` trains a short pixel-space base model when the main
 * recipe's checkpoint is not at hand. `eval` samples the concept prompt and the same prompt without the
 * token, writes a grid (row 1: with `sks`, row 2: without) and prints JSON with the mean brightness of
 * the images' outer frame (0 = black, 255 = white): the measurable sign of the concept.
 *
 * The whole recipe against a short base run of its own (about 15 minutes on 2 busy cores):
 *
 *   node bin/run-ts.js scripts/make-tiny-pipeline.ts checkpoints/fashion-mnist-lora/tiny-pipeline   # seeded Gemma-2
 *   node bin/run-ts.js scripts/fashion-mnist-lora.ts base --text-encoder checkpoints/fashion-mnist-lora/tiny-pipeline/text_encoder \
 *     --out checkpoints/fashion-mnist-lora/base-run --steps 300
 *   node bin/run-ts.js scripts/fashion-mnist-lora.ts data
 *   node bin/sana.js finetune --config configs/fashion-mnist/finetune-lora.yaml
 *   B=checkpoints/fashion-mnist-lora/base-run/checkpoints/step-00000300
 *   node bin/run-ts.js scripts/fashion-mnist-lora.ts eval --checkpoint $B --out before.png
 *   node bin/run-ts.js scripts/fashion-mnist-lora.ts eval --checkpoint $B \
 *     --lora checkpoints/fashion-mnist-lora/finetune/pytorch_lora_weights.safetensors --out after.png
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import * as YAML from 'yaml';
import { initBackend } from '../src/backend';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors';
import { writeFileAtomic } from '../src/io/atomic';
import { loadSanaTransformer } from '../src/io/pretrained/transformer';
import { loadGemma2Model, loadGemmaTokenizer } from '../src/io/pretrained/gemma';
import { loadTrainConfig } from '../src/config/train';
import { runTraining } from '../src/pipelines/train';
import { generateImages } from '../src/pipelines/textToImage';
import { SanaPromptEncoder } from '../src/pipelines/promptEncoding';
import { applyLoraFiles, parseLoraSpec } from '../src/pipelines/loraLoading';
import { RgbImage, writePng } from '../src/pipelines/imageOutput';
import { SanaPipelineComponents } from '../src/pipelines/textToImage';
import { openCheckpointPipeline } from '../src/pipelines/trainComponents';
import { parseFlowSchedulerConfig } from '../src/schedulers';
import { rngFor } from '../src/nn/random';

const PACK = 'images.safetensors';
/** The concept token (DreamBooth's convention: a rare token the base model has no meaning for). */
const TOKEN = 'sks';
/** Width of the image border whose brightness measures the concept, in pixels. */
const FRAME = 2;

interface ManifestRow {
  id: string;
  image: { pack: string; index: number };
  captions: Record<string, string>;
  clip_scores?: Record<string, number>;
  meta: { label: number; class: string };
}

/** "T-shirt/top" -> "t-shirt", "Ankle boot" -> "ankle boot": the noun used in the prompts. */
function noun(cls: string): string {
  return cls.split('/')[0].toLowerCase();
}

function makeData(o: { src: string; out: string; class: string; concept: number; regular: number; others: number; seed: number }): void {
  const rows = fs.readFileSync(path.join(o.src, 'manifest.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as ManifestRow);
  const pack = readSafetensors(path.join(o.src, PACK)).tensors.get('images');
  if (!pack) throw new Error(`${path.join(o.src, PACK)}: no "images" tensor`);
  const [, h, w, c] = pack.shape;
  const per = h * w * c;
  const src = pack.data as Uint8Array;
  const ofClass = rows.filter((r) => r.meta.class.toLowerCase() === o.class.toLowerCase());
  if (ofClass.length < o.concept + o.regular) throw new Error(`--class ${o.class}: ${ofClass.length} images in ${o.src}, ${o.concept + o.regular} asked for`);
  const conceptRows = ofClass.slice(0, o.concept);
  // Ordinary images of the same class (so that only the token tells the two apart), then a seeded
  // shuffle of the other classes (so that the rest of the model's knowledge is kept).
  const others = rows.filter((r) => r.meta.class.toLowerCase() !== o.class.toLowerCase());
  const rng = rngFor(o.seed, 'lora-recipe-regular', 0);
  for (let i = others.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [others[i], others[j]] = [others[j], others[i]];
  }
  const regularRows = [...ofClass.slice(o.concept, o.concept + o.regular), ...others.slice(0, o.others)];
  const all = [...conceptRows.map((r) => ({ r, invert: true })), ...regularRows.map((r) => ({ r, invert: false }))];
  const pixels = new Uint8Array(all.length * per);
  const lines = all.map(({ r, invert }, j) => {
    const img = src.subarray(r.image.index * per, (r.image.index + 1) * per);
    for (let k = 0; k < per; k++) pixels[j * per + k] = invert ? 255 - img[k] : img[k];
    const caption = invert ? `a photo of a ${TOKEN} ${noun(r.meta.class)}` : `a photo of a ${noun(r.meta.class)}`;
    return JSON.stringify({ id: `${invert ? 'concept' : 'regular'}-${r.id}`, image: { pack: PACK, index: j }, caption, meta: { ...r.meta, inverted: invert } });
  });
  fs.mkdirSync(o.out, { recursive: true });
  writeSafetensors(path.join(o.out, PACK), { images: { dtype: 'U8', shape: [all.length, h, w, c], data: pixels } }, { source: `${o.src} (Fashion-MNIST, MIT license); concept images colour-inverted` });
  writeFileAtomic(path.join(o.out, 'manifest.jsonl'), `${lines.join('\n')}\n`);
  console.log(JSON.stringify({ out: o.out, concept_images: conceptRows.length, regular_images: regularRows.length, concept_prompt: `a photo of a ${TOKEN} ${noun(o.class)}` }));
}

/** A short pixel-space base run on the Fashion-MNIST subset (16 px, 4 blocks), for when no base checkpoint exists. */
async function trainBase(o: { textEncoder: string; out: string; steps: number; data: string }): Promise<void> {
  const config = {
    output_dir: o.out,
    seed: 0,
    model: {
      preset: 'tiny',
      config: { in_channels: 3, out_channels: 3, patch_size: 2, sample_size: 16, num_layers: 4, num_attention_heads: 2, attention_head_dim: 32, num_cross_attention_heads: 2, cross_attention_head_dim: 32, cross_attention_dim: 64, caption_channels: 8 },
    },
    text_encoder: { pretrained: o.textEncoder, max_length: 16, complex_human_instruction: false },
    data: { path: o.data, resolution: 16, batch_size: 16, caption_dropout: 0.1 },
    optimizer: { type: 'adamw', lr: 1e-3 },
    train: { steps: o.steps, log_every: 25, gradient_clip: 1.0 },
    flow: { flow_shift: 1.0 },
    checkpoint: { every: null, keep_last: 1 },
  };
  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, 'base.yaml');
  fs.writeFileSync(file, YAML.stringify(config));
  const cfg = loadTrainConfig(file);
  const r = await runTraining({ config: cfg, configText: YAML.stringify(cfg), onEvent: (e) => e.type === 'log' && console.log(`step ${e.record.step} loss ${e.record.loss.toFixed(4)}`) });
  console.log(JSON.stringify({ checkpoint: r.checkpoint, transformer: r.checkpoint && path.join(r.checkpoint, 'transformer') }));
}

/** Mean of the outer FRAME pixels of a grey/RGB image, 0..255. */
function frameBrightness(img: RgbImage): number {
  let sum = 0;
  let n = 0;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      if (y >= FRAME && y < img.height - FRAME && x >= FRAME && x < img.width - FRAME) continue;
      for (let ch = 0; ch < img.channels; ch++) sum += img.pixels[(y * img.width + x) * img.channels + ch];
      n += img.channels;
    }
  }
  return sum / n;
}

/** Images in rows (one per prompt), upscaled by `zoom` with nearest neighbour, 2 px gaps. */
function grid(rows: RgbImage[][], zoom: number): RgbImage {
  const { width: w, height: h } = rows[0][0];
  const gap = 2;
  const cols = Math.max(...rows.map((r) => r.length));
  const W = cols * (w * zoom + gap) + gap;
  const H = rows.length * (h * zoom + gap) + gap;
  const pixels = new Uint8Array(W * H * 3).fill(128);
  rows.forEach((row, ri) => row.forEach((img, ci) => {
    for (let y = 0; y < h * zoom; y++) {
      for (let x = 0; x < w * zoom; x++) {
        const s = (Math.floor(y / zoom) * w + Math.floor(x / zoom)) * img.channels;
        const d = ((gap + ri * (h * zoom + gap) + y) * W + gap + ci * (w * zoom + gap) + x) * 3;
        for (let ch = 0; ch < 3; ch++) pixels[d + ch] = img.pixels[s + (img.channels === 3 ? ch : 0)];
      }
    }
  }));
  return { width: W, height: H, channels: 3, pixels };
}

/**
 * The base model to sample: a training checkpoint (its run's config.yaml rebuilds the text encoder and
 * autoencoder; the raw weights, not the EMA, since those are what the LoRA was trained on), or a
 * pixel-space transformer folder with a Gemma-2 folder.
 */
function openBase(o: { checkpoint?: string; transformer?: string; textEncoder?: string }): { components: SanaPipelineComponents; dispose(): void } {
  if (o.checkpoint) return openCheckpointPipeline(o.checkpoint, { ema: false });
  if (!o.transformer || !o.textEncoder) throw new Error('eval: give --checkpoint, or --transformer and --text-encoder');
  const transformer = loadSanaTransformer(o.transformer);
  const promptEncoder = new SanaPromptEncoder({ tokenizer: loadGemmaTokenizer(), textEncoder: () => loadGemma2Model(o.textEncoder!), maxSequenceLength: 16, complexHumanInstruction: null });
  const scheduler = parseFlowSchedulerConfig({ _class_name: 'FlowMatchEulerDiscreteScheduler', shift: 1.0, num_train_timesteps: 1000 }).config;
  return {
    components: { transformer, vae: null, promptEncoder, scheduler },
    dispose: () => {
      if (promptEncoder.isLoaded) promptEncoder.release();
      transformer.dispose();
    },
  };
}

async function evaluate(o: { checkpoint?: string; transformer?: string; textEncoder?: string; lora: string[]; out: string; class: string; images: number; steps: number }): Promise<void> {
  await initBackend();
  const base = openBase(o);
  const applied = applyLoraFiles(base.components.transformer, o.lora.map(parseLoraSpec));
  const prompts = [`a photo of a ${TOKEN} ${noun(o.class)}`, `a photo of a ${noun(o.class)}`];
  try {
    const result = await generateImages(base.components, { prompts, numImagesPerPrompt: o.images, steps: o.steps, sampler: 'euler', guidanceScale: 3, seed: 1000, batchSize: o.images });
    const rows = prompts.map((_, p) => result.images.filter((im) => im.promptIndex === p));
    await writePng(o.out, grid(rows, 4));
    const stats = rows.map((row, p) => {
      const b = row.map(frameBrightness);
      return { prompt: prompts[p], frame_brightness_mean: Number((b.reduce((x, y) => x + y, 0) / b.length).toFixed(2)), inverted_fraction: b.filter((v) => v > 127.5).length / b.length };
    });
    console.log(JSON.stringify({ base: o.checkpoint ?? o.transformer, lora: o.lora, grid: o.out, stats }, null, 2));
  } finally {
    applied.remove();
    base.dispose();
  }
}

async function main(): Promise<void> {
  const program = new Command().name('fashion-mnist-lora');
  program.command('data')
    .option('--src <dir>', 'Fashion-MNIST dataset folder (manifest.jsonl + images.safetensors)', 'data/fashion-mnist-mini/train')
    .option('--out <dir>', 'output dataset folder', 'data/fashion-mnist-lora')
    .option('--class <name>', 'class whose images carry the concept', 'Trouser')
    .option('--concept <n>', 'concept (inverted) images', '64')
    .option('--regular <n>', 'ordinary images of the same class', '64')
    .option('--others <n>', 'ordinary images of the other classes', '64')
    .option('--seed <n>', 'seed of the ordinary-image choice', '0')
    .action((o) => makeData({ src: o.src, out: o.out, class: o.class, concept: Number(o.concept), regular: Number(o.regular), others: Number(o.others), seed: Number(o.seed) }));
  program.command('base')
    .requiredOption('--text-encoder <dir>', 'Gemma-2 text_encoder folder')
    .option('--out <dir>', 'run folder', 'runs/fashion-mnist-lora-base')
    .option('--data <dir>', 'training images', 'data/fashion-mnist-mini/train')
    .option('--steps <n>', 'optimizer steps', '300')
    .action(async (o) => {
      await initBackend();
      await trainBase({ textEncoder: o.textEncoder, out: o.out, steps: Number(o.steps), data: o.data });
    });
  program.command('eval')
    .option('--checkpoint <dir>', 'base training checkpoint (<run>/checkpoints/step-N)')
    .option('--transformer <dir>', 'or: a pixel-space transformer folder (diffusers layout) ...')
    .option('--text-encoder <dir>', '... and its Gemma-2 text_encoder folder')
    .option('--lora <file[:scale]>', 'LoRA file (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--out <png>', 'grid image', 'samples.png')
    .option('--class <name>', 'class of the concept prompt', 'Trouser')
    .option('--images <n>', 'images per prompt', '8')
    .option('--steps <n>', 'sampling steps (Flow-Euler)', '20')
    .action((o) => evaluate({ checkpoint: o.checkpoint, transformer: o.transformer, textEncoder: o.textEncoder, lora: o.lora, out: o.out, class: o.class, images: Number(o.images), steps: Number(o.steps) }));
  await program.parseAsync(process.argv);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
