/**
 * Converts Fashion-MNIST's IDX files into our dataset format (see data/README.md), both splits.
 *
 *   node bin/run-ts.js scripts/convert-fashion-mnist.ts [--src DIR] [--out DIR] [--train-per-class N] [--test-per-class N]
 *
 * --src defaults to /usr/share/datasets/fashion-mnist (Debian package `dataset-fashion-mnist`); --out to
 * data/fashion-mnist. Without --*-per-class every image is converted (60 000 train, 10 000 test). The
 * bundled subset data/fashion-mnist-mini was made with:
 *
 *   node bin/run-ts.js scripts/convert-fashion-mnist.ts --out data/fashion-mnist-mini --train-per-class 200 --test-per-class 50
 */
import * as path from 'path';
import { Command } from 'commander';
import {
  balancedSubset,
  DEFAULT_FASHION_MNIST_DIR,
  FashionMnistSplit,
  readFashionMnist,
  writeFashionMnistDataset,
} from '../src/data/fashionMnist';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
}

function main(): void {
  const program = new Command()
    .name('convert-fashion-mnist')
    .option('--src <dir>', 'folder with the four IDX .gz files', DEFAULT_FASHION_MNIST_DIR)
    .option('--out <dir>', 'output folder (gets train/ and test/)', path.join('data', 'fashion-mnist'))
    .option('--train-per-class <n>', 'keep the first N training images of each class', positiveInt('--train-per-class'))
    .option('--test-per-class <n>', 'keep the first N test images of each class', positiveInt('--test-per-class'))
    .parse(process.argv);
  const opts = program.opts<{ src: string; out: string; trainPerClass?: number; testPerClass?: number }>();
  const perClass: Record<FashionMnistSplit, number | undefined> = { train: opts.trainPerClass, test: opts.testPerClass };
  for (const split of ['train', 'test'] as const) {
    const data = readFashionMnist(opts.src, split);
    const indices = balancedSubset(data.labels, perClass[split]);
    const outDir = path.join(opts.out, split);
    const n = writeFashionMnistDataset(outDir, split, data, indices);
    console.log(`${split}: ${n} of ${data.count} images -> ${outDir}`);
  }
}

try {
  main();
} catch (e) {
  console.error(`convert-fashion-mnist: ${(e as Error).message}`);
  process.exit(1);
}
