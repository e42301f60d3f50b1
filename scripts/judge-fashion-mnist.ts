/**
 * Judges a Fashion-MNIST text-to-image checkpoint: for each of the 10 class prompts ("a photo of a
 * sneaker", ...) generates N images with the text-to-image pipeline, classifies them with the
 * Fashion-MNIST classifier (scripts/train-classifier.ts) and prints per-class and overall accuracy
 * (the share of images classified as the prompted class) as JSON.
 *
 *   node bin/run-ts.js scripts/judge-fashion-mnist.ts --checkpoint runs/fashion-mnist-dit [--n 50]
 *       [--classifier data/fashion-mnist-classifier] [--steps 20] [--cfg 4] [--sampler dpm|euler]
 *       [--seed 1000] [--batch-size 100] [--no-ema] [--grid FILE.png] [--out FILE.json] [--backend NAME]
 *
 * --checkpoint takes a checkpoint folder (<run>/checkpoints/step-N) or a run folder (its latest
 * checkpoint). Images are made at the run's training resolution; other sizes than the classifier's
 * 28x28 are resized (bilinear), and RGB is averaged to grey.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { initBackend, tf, Tensor4D } from '../src/backend';
import { FASHION_MNIST_CLASSES } from '../src/data/fashionMnist';
import { RunFolder } from '../src/training/runFolder';
import { openCheckpointPipeline } from '../src/pipelines/trainComponents';
import { generateImages, GeneratedImage, SamplerName } from '../src/pipelines/textToImage';
import { imageGrid } from '../src/pipelines/trainValidation';
import { writePng } from '../src/pipelines/imageOutput';
import { writeFileAtomic } from '../src/io/atomic';
import { DEFAULT_CLASSIFIER_DIR, loadFashionMnistClassifier } from '../src/io/pretrained/classifier';
import { FashionMnistClassifier } from '../src/models/classifier/fashionMnist';

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer >= ${min}, got "${v}"`);
    return n;
  };
}

/** Generated images -> predicted class per image. */
function classify(model: FashionMnistClassifier, images: GeneratedImage[]): number[] {
  const side = model.config.sample_size;
  const { width: w, height: h, channels: c } = images[0];
  const host = new Float32Array(images.length * h * w * c);
  images.forEach((im, i) => host.set(Float32Array.from(im.pixels, (v) => (v / 255) * 2 - 1), i * h * w * c));
  const pred = tf.tidy(() => {
    let x = tf.tensor4d(host, [images.length, h, w, c]) as Tensor4D;
    if (c === 3) x = x.mean(3, true) as Tensor4D;
    if (h !== side || w !== side) x = tf.image.resizeBilinear(x, [side, side], true) as Tensor4D;
    return model.forward(x).argMax(1);
  });
  const out = Array.from(pred.dataSync());
  pred.dispose();
  return out;
}

/** A checkpoint folder as given, or the newest complete checkpoint of a run folder. */
function resolveCheckpoint(dir: string): string {
  if (fs.existsSync(path.join(dir, 'trainer_state.json'))) return dir;
  if (fs.existsSync(path.join(dir, 'config.yaml'))) {
    const latest = RunFolder.open(dir).latestCheckpoint();
    if (latest) return latest.dir;
  }
  throw new Error(`--checkpoint ${dir}: neither a checkpoint folder (trainer_state.json) nor a run folder with checkpoints`);
}

async function main(): Promise<void> {
  const o = new Command()
    .name('judge-fashion-mnist')
    .requiredOption('--checkpoint <dir>', 'checkpoint folder, or a run folder (its latest checkpoint)')
    .option('--classifier <dir>', 'classifier folder', DEFAULT_CLASSIFIER_DIR)
    .option('--n <n>', 'images per class prompt', int('--n', 1), 50)
    .option('--steps <n>', 'sampling steps', int('--steps', 1), 20)
    .option('--cfg <x>', 'classifier-free guidance scale', (v) => Number(v), 4.0)
    .option('--sampler <name>', 'dpm | euler', 'dpm')
    .option('--seed <n>', 'seed of the first image (image i uses seed + i)', int('--seed', 0), 1000)
    .option('--batch-size <n>', 'images denoised together', int('--batch-size', 1), 100)
    .option('--no-ema', 'use the trained weights, not their EMA')
    .option('--grid <file>', 'also write the samples as a PNG grid (one row per class)')
    .option('--out <file>', 'also write the JSON report to a file')
    .option('--backend <name>', 'tensorflow | wasm | cpu (default: the fastest available)')
    .parse(process.argv)
    .opts<{ checkpoint: string; classifier: string; n: number; steps: number; cfg: number; sampler: string; seed: number; batchSize: number; ema: boolean; grid?: string; out?: string; backend?: string }>();
  if (o.sampler !== 'dpm' && o.sampler !== 'euler') throw new Error(`--sampler: expected dpm or euler, got "${o.sampler}"`);
  if (!Number.isFinite(o.cfg) || o.cfg < 0) throw new Error(`--cfg: expected a number >= 0, got ${o.cfg}`);
  await initBackend(o.backend);

  const checkpoint = resolveCheckpoint(o.checkpoint);
  const classifier = loadFashionMnistClassifier(o.classifier);
  const pipe = openCheckpointPipeline(checkpoint, { ema: o.ema });
  const t0 = Date.now();
  try {
    const prompts = FASHION_MNIST_CLASSES.map((c) => c.prompt);
    const { images, settings } = await generateImages(pipe.components, {
      prompts,
      numImagesPerPrompt: o.n,
      steps: o.steps,
      guidanceScale: o.cfg,
      sampler: o.sampler as SamplerName,
      seed: o.seed,
      batchSize: o.batchSize,
      height: pipe.config.data.resolution,
      width: pipe.config.data.resolution,
      resolutionBinning: false,
      onProgress: (e) => {
        if (e.type === 'decoded') process.stderr.write(`\rbatch ${e.batch + 1}/${e.batches}`);
      },
    });
    process.stderr.write('\n');
    const predicted = classify(classifier, images);
    const perClass = FASHION_MNIST_CLASSES.map((c) => {
      const mine = images.map((im, i) => ({ im, p: predicted[i] })).filter(({ im }) => im.promptIndex === c.label);
      const counts = new Array<number>(FASHION_MNIST_CLASSES.length).fill(0);
      mine.forEach(({ p }) => counts[p]++);
      return { class: c.name, prompt: c.prompt, images: mine.length, correct: counts[c.label], accuracy: counts[c.label] / mine.length, predicted_counts: counts };
    });
    const correct = perClass.reduce((n, c) => n + c.correct, 0);
    const report = {
      checkpoint: path.resolve(checkpoint),
      classifier: path.resolve(o.classifier),
      accuracy: correct / images.length,
      images: images.length,
      per_class: perClass,
      settings: { images_per_class: o.n, steps: settings.steps, guidance_scale: settings.guidance_scale, sampler: settings.sampler, seed: o.seed, ema: o.ema, height: settings.height, width: settings.width },
      seconds: Math.round((Date.now() - t0) / 1000),
    };
    const text = JSON.stringify(report, null, 2);
    console.log(text);
    if (o.out) writeFileAtomic(o.out, `${text}\n`);
    if (o.grid) await writePng(o.grid, imageGrid(images, o.n));
  } finally {
    pipe.dispose();
    classifier.dispose();
  }
}

main().catch((e) => {
  console.error(`judge-fashion-mnist: ${(e as Error).message}`);
  process.exit(1);
});
