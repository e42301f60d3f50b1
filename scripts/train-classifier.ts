/**
 * Trains the Fashion-MNIST judge (`src/models/classifier/fashionMnist.ts`) on the 60 000 training
 * images, reports its accuracy on the 10 000 test images, and writes `config.json` +
 * `model.safetensors` (about 0.4 MB) to data/fashion-mnist-classifier/.
 *
 *   node bin/run-ts.js scripts/train-classifier.ts [--src DIR] [--out DIR] [--epochs N] [--batch-size N] [--lr X] [--seed N] [--backend NAME]
 *
 * --src is the folder with the IDX files (default /usr/share/datasets/fashion-mnist, Debian package
 * `dataset-fashion-mnist`). Training: AdamW, cosine learning-rate decay, cross-entropy; each batch is
 * augmented with random horizontal flips and shifts of up to 2 pixels (so the judge tolerates the small
 * misalignments of generated samples). Every random draw is seeded.
 */
import { Command } from 'commander';
import { initBackend, tf, Scalar, Tensor4D } from '../src/backend';
import { rngFor } from '../src/nn/random';
import { valueAndGrads } from '../src/nn/grad';
import { AdamW } from '../src/training/optim';
import { DEFAULT_FASHION_MNIST_DIR, FashionMnistData, readFashionMnist } from '../src/data/fashionMnist';
import { FashionMnistClassifier, FASHION_MNIST_CLASSES } from '../src/models/classifier/fashionMnist';
import { DEFAULT_CLASSIFIER_DIR, saveFashionMnistClassifier } from '../src/io/pretrained/classifier';

/** Largest shift (pixels) of the translation augmentation. */
const MAX_SHIFT = 2;

/** Images `idx` of `data` as [B, 28, 28, 1] in [-1, 1], optionally flipped/shifted per image. */
function batchPixels(data: FashionMnistData, idx: number[], augment: { seed: number; step: number } | null): Float32Array {
  const { height: h, width: w } = data;
  const out = new Float32Array(idx.length * h * w);
  const rng = augment ? rngFor(augment.seed, 'classifier/augment', augment.step) : null;
  idx.forEach((src, b) => {
    const flip = rng ? rng.uniform() < 0.5 : false;
    const dy = rng ? rng.int(2 * MAX_SHIFT + 1) - MAX_SHIFT : 0;
    const dx = rng ? rng.int(2 * MAX_SHIFT + 1) - MAX_SHIFT : 0;
    const base = src * h * w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const sy = y - dy;
        let sx = x - dx;
        if (flip) sx = w - 1 - sx;
        const v = sy >= 0 && sy < h && sx >= 0 && sx < w ? data.images[base + sy * w + sx] : 0;
        out[b * h * w + y * w + x] = (v / 255) * 2 - 1;
      }
    }
  });
  return out;
}

function oneHot(data: FashionMnistData, idx: number[]): Float32Array {
  const out = new Float32Array(idx.length * FASHION_MNIST_CLASSES.length);
  idx.forEach((src, b) => (out[b * FASHION_MNIST_CLASSES.length + data.labels[src]] = 1));
  return out;
}

/** Accuracy (overall and per class) of `model` on every image of `data`. */
function evaluate(model: FashionMnistClassifier, data: FashionMnistData, batchSize = 500): { accuracy: number; perClass: number[] } {
  const correct = new Array<number>(10).fill(0);
  const total = new Array<number>(10).fill(0);
  for (let start = 0; start < data.count; start += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, data.count - start) }, (_, i) => start + i);
    const pred = tf.tidy(() => model.forward(tf.tensor4d(batchPixels(data, idx, null), [idx.length, data.height, data.width, 1])).argMax(1));
    const p = pred.dataSync();
    pred.dispose();
    idx.forEach((src, i) => {
      total[data.labels[src]]++;
      if (p[i] === data.labels[src]) correct[data.labels[src]]++;
    });
  }
  return { accuracy: correct.reduce((a, b) => a + b) / data.count, perClass: correct.map((c, i) => c / Math.max(1, total[i])) };
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('train-classifier')
    .option('--src <dir>', 'folder with the four IDX .gz files', DEFAULT_FASHION_MNIST_DIR)
    .option('--out <dir>', 'output folder', DEFAULT_CLASSIFIER_DIR)
    .option('--epochs <n>', 'passes over the training set', (v) => Number(v), 4)
    .option('--batch-size <n>', 'images per step', (v) => Number(v), 128)
    .option('--lr <x>', 'peak learning rate', (v) => Number(v), 2e-3)
    .option('--seed <n>', 'seed of the initial weights, shuffling and augmentation', (v) => Number(v), 0)
    .option('--backend <name>', 'tensorflow | wasm | cpu (default: the fastest available)')
    .parse(process.argv)
    .opts<{ src: string; out: string; epochs: number; batchSize: number; lr: number; seed: number; backend?: string }>();
  for (const k of ['epochs', 'batchSize', 'seed'] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 0 || (k !== 'seed' && opts[k] === 0)) throw new Error(`--${k}: expected a positive integer, got ${opts[k]}`);
  }
  const backend = await initBackend(opts.backend);
  console.log(`backend: ${backend.name}`);
  const train = readFashionMnist(opts.src, 'train');
  const test = readFashionMnist(opts.src, 'test');

  const model = new FashionMnistClassifier().initialize(opts.seed);
  const params = model.trainableParameters();
  const optimizer = new AdamW(params, { weightDecay: 1e-4 });
  const stepsPerEpoch = Math.floor(train.count / opts.batchSize);
  const totalSteps = stepsPerEpoch * opts.epochs;
  const t0 = Date.now();
  let step = 0;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const order = rngFor(opts.seed, 'classifier/shuffle', epoch).permutation(train.count);
    let lossSum = 0;
    for (let i = 0; i < stepsPerEpoch; i++, step++) {
      const idx = order.slice(i * opts.batchSize, (i + 1) * opts.batchSize);
      // Cosine decay from the peak rate to zero over the whole run.
      const lr = 0.5 * opts.lr * (1 + Math.cos((Math.PI * step) / totalSteps));
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(batchPixels(train, idx, { seed: opts.seed, step }), [idx.length, train.height, train.width, 1]) as Tensor4D;
        const y = tf.tensor2d(oneHot(train, idx), [idx.length, 10]);
        const { value, grads } = valueAndGrads(() => tf.losses.softmaxCrossEntropy(y, model.forward(x)) as Scalar, params);
        optimizer.step(grads, lr);
        return value;
      });
      if (i % 50 === 0 || i === stepsPerEpoch - 1) {
        lossSum = loss.dataSync()[0];
        const rate = (step + 1) / ((Date.now() - t0) / 1000);
        process.stdout.write(`\repoch ${epoch + 1}/${opts.epochs} step ${i + 1}/${stepsPerEpoch} loss ${lossSum.toFixed(4)} ${rate.toFixed(1)} it/s   `);
      }
      loss.dispose();
    }
    const { accuracy } = evaluate(model, test);
    process.stdout.write(`\nepoch ${epoch + 1}: test accuracy ${(100 * accuracy).toFixed(2)}%\n`);
  }
  const seconds = (Date.now() - t0) / 1000;
  const result = evaluate(model, test);
  const report = {
    test_accuracy: Number(result.accuracy.toFixed(4)),
    per_class_accuracy: Object.fromEntries(FASHION_MNIST_CLASSES.map((c, i) => [c, Number(result.perClass[i].toFixed(4))])),
    epochs: opts.epochs,
    batch_size: opts.batchSize,
    lr: opts.lr,
    seed: opts.seed,
    train_seconds: Math.round(seconds),
    backend: backend.name,
  };
  saveFashionMnistClassifier(model, opts.out, { training: report });
  console.log(JSON.stringify(report, null, 2));
  console.log(`saved ${opts.out}`);
  model.dispose();
  optimizer.dispose();
}

main().catch((e) => {
  console.error(`train-classifier: ${(e as Error).message}`);
  process.exit(1);
});
