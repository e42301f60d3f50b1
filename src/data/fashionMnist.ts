/**
 * Fashion-MNIST (Xiao, Rasul and Vollgraf 2017; zalandoresearch/fashion-mnist) in our dataset format.
 *
 * Reads the original IDX files (gzip or plain) and writes a dataset folder: `images.safetensors` (an image
 * pack, uint8 [N, 28, 28, 1]) and `manifest.jsonl` with four captions per image and a CLIP-like score per
 * caption. The scores are synthetic, drawn from fixed ranges so the CLIP-score rule has something real to
 * do: three correct phrasings score 25.5-36 (all pass the default threshold 25), and one deliberately
 * wrong caption (another class) scores 10-22, so the rule must never pick it. Scores depend only on
 * (split, index in the original file), so a subset has the same captions as the full conversion.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { rngFor } from '../nn/random';
import { writeSafetensors } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';
import { MANIFEST_FILE } from './manifest';
import { PACK_TENSOR } from './images';

export interface FashionMnistClass {
  label: number;
  /** The dataset's own class name. */
  name: string;
  /** Noun phrase used in captions ("ankle boot"). */
  noun: string;
  /** The canonical text prompt for this class ("a photo of an ankle boot"): the `prompt` caption. */
  prompt: string;
}

const NOUNS: Array<[string, string]> = [
  ['T-shirt/top', 't-shirt'],
  ['Trouser', 'pair of trousers'],
  ['Pullover', 'pullover'],
  ['Dress', 'dress'],
  ['Coat', 'coat'],
  ['Sandal', 'sandal'],
  ['Shirt', 'shirt'],
  ['Sneaker', 'sneaker'],
  ['Bag', 'bag'],
  ['Ankle boot', 'ankle boot'],
];

function withArticle(noun: string): string {
  return /^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}

export const FASHION_MNIST_CLASSES: readonly FashionMnistClass[] = NOUNS.map(([name, noun], label) => ({
  label,
  name,
  noun,
  prompt: `a photo of ${withArticle(noun)}`,
}));

/** The original files, as the Debian package `dataset-fashion-mnist` installs them. */
export const FASHION_MNIST_FILES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;
export type FashionMnistSplit = keyof typeof FASHION_MNIST_FILES;

export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The image pack written next to the manifest. */
export const FASHION_MNIST_PACK_FILE = 'images.safetensors';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/**
 * Parses an IDX file (LeCun's MNIST format): magic 0x0000 TT DD (TT 0x08 = uint8, DD = rank), then DD
 * big-endian uint32 dimensions, then the data. Gzip input is recognised by its magic bytes.
 */
export function parseIdx(bytes: Uint8Array, what = 'IDX file'): IdxArray {
  let buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new Error(`${what}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new Error(`${what}: not an IDX file (bad magic number)`);
  if (buf[2] !== 0x08) throw new Error(`${what}: element type 0x${buf[2].toString(16)} is not uint8 (0x08)`);
  const rank = buf[3];
  if (buf.length < 4 + 4 * rank) throw new Error(`${what}: truncated header`);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(buf.readUInt32BE(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (buf.length - start !== count) throw new Error(`${what}: header says [${shape}] (${count} bytes) but ${buf.length - start} data bytes follow`);
  return { shape, data: new Uint8Array(buf.buffer, buf.byteOffset + start, count).slice() };
}

export interface FashionMnistData {
  /** uint8 [N, 28, 28], 0 = background. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
}

/** Reads one split from `dir` (the folder holding the four `.gz` files). */
export function readFashionMnist(dir: string, split: FashionMnistSplit): FashionMnistData {
  const read = (name: string): IdxArray => {
    const file = path.join(dir, name);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); install the Debian package dataset-fashion-mnist or pass the folder holding the IDX files`);
    }
    return parseIdx(bytes, file);
  };
  const images = read(FASHION_MNIST_FILES[split].images);
  const labels = read(FASHION_MNIST_FILES[split].labels);
  if (images.shape.length !== 3) throw new Error(`${FASHION_MNIST_FILES[split].images}: expected [N, H, W], got [${images.shape}]`);
  if (labels.shape.length !== 1 || labels.shape[0] !== images.shape[0]) {
    throw new Error(`${FASHION_MNIST_FILES[split].labels}: expected [${images.shape[0]}] labels, got [${labels.shape}]`);
  }
  for (let i = 0; i < labels.data.length; i++) {
    if (labels.data[i] >= FASHION_MNIST_CLASSES.length) throw new Error(`${FASHION_MNIST_FILES[split].labels}: label ${labels.data[i]} at ${i} is not a class 0-9`);
  }
  return { images: images.data, labels: labels.data, count: images.shape[0], height: images.shape[1], width: images.shape[2] };
}

/** Score ranges [low, high) of each caption type; `wrong` stays far below the default threshold 25. */
export const CAPTION_SCORE_RANGES = {
  prompt: [29, 34],
  short: [25.5, 30],
  detailed: [30, 36],
  wrong: [10, 22],
} as const;

export interface FashionMnistCaptions {
  captions: Record<keyof typeof CAPTION_SCORE_RANGES, string>;
  clip_scores: Record<keyof typeof CAPTION_SCORE_RANGES, number>;
}

/** The captions and scores of image `index` of `split` with class `label` (deterministic). */
export function fashionMnistCaptions(split: FashionMnistSplit, index: number, label: number): FashionMnistCaptions {
  const rng = rngFor(0, `fashion-mnist/${split}/captions`, index);
  const cls = FASHION_MNIST_CLASSES[label];
  // A different class, uniformly among the other nine.
  const other = FASHION_MNIST_CLASSES[(label + 1 + rng.int(FASHION_MNIST_CLASSES.length - 1)) % FASHION_MNIST_CLASSES.length];
  const score = (k: keyof typeof CAPTION_SCORE_RANGES): number => {
    const [lo, hi] = CAPTION_SCORE_RANGES[k];
    return Math.round((lo + (hi - lo) * rng.uniform()) * 100) / 100;
  };
  return {
    captions: {
      prompt: cls.prompt,
      short: cls.noun,
      detailed: `a grayscale product photo of ${withArticle(cls.noun)} on a black background`,
      wrong: other.prompt,
    },
    clip_scores: { prompt: score('prompt'), short: score('short'), detailed: score('detailed'), wrong: score('wrong') },
  };
}

/** Indices of the first `perClass` images of each class, in file order (all images when undefined). */
export function balancedSubset(labels: Uint8Array, perClass?: number): number[] {
  if (perClass === undefined) return Array.from({ length: labels.length }, (_, i) => i);
  const taken = new Array<number>(FASHION_MNIST_CLASSES.length).fill(0);
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (taken[labels[i]] < perClass) {
      taken[labels[i]]++;
      out.push(i);
    }
  }
  return out;
}

/**
 * Writes one split as a dataset folder `outDir` (manifest.jsonl + images.safetensors). `indices` picks
 * images of `data` (all by default); ids keep the original index (`train-00042`).
 */
export function writeFashionMnistDataset(outDir: string, split: FashionMnistSplit, data: FashionMnistData, indices?: readonly number[]): number {
  const pick = indices ?? Array.from({ length: data.count }, (_, i) => i);
  const per = data.height * data.width;
  const pixels = new Uint8Array(pick.length * per);
  const lines: string[] = [];
  pick.forEach((src, j) => {
    if (src < 0 || src >= data.count) throw new RangeError(`fashion-mnist ${split}: index ${src} out of range (${data.count} images)`);
    pixels.set(data.images.subarray(src * per, (src + 1) * per), j * per);
    const label = data.labels[src];
    const { captions, clip_scores } = fashionMnistCaptions(split, src, label);
    lines.push(JSON.stringify({
      id: `${split}-${String(src).padStart(5, '0')}`,
      image: { pack: FASHION_MNIST_PACK_FILE, index: j },
      captions,
      clip_scores,
      meta: { label, class: FASHION_MNIST_CLASSES[label].name },
    }));
  });
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, FASHION_MNIST_PACK_FILE), { [PACK_TENSOR]: { dtype: 'U8', shape: [pick.length, data.height, data.width, 1], data: pixels } }, {
    source: 'Fashion-MNIST (zalandoresearch/fashion-mnist, MIT license)',
    split,
  });
  writeFileAtomic(path.join(outDir, MANIFEST_FILE), lines.join('\n') + '\n');
  return pick.length;
}
