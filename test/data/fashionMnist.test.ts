/**
 * Fashion-MNIST conversion (IDX -> our dataset format) and the bundled subset data/fashion-mnist-mini.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { tf } from '../../src/backend';
import { BatchSource, disposeBatch } from '../../src/data/batches';
import { squareBucketTable } from '../../src/data/buckets';
import { ImageDataset } from '../../src/data/dataset';
import {
  balancedSubset,
  CAPTION_SCORE_RANGES,
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  fashionMnistCaptions,
  parseIdx,
  readFashionMnist,
  writeFashionMnistDataset,
} from '../../src/data/fashionMnist';
import { readManifest } from '../../src/data/manifest';
import { expectNoLeak, useTestBackend } from '../helpers';
import { tempDir } from './fixtures';

const MINI = path.resolve(__dirname, '..', '..', 'data', 'fashion-mnist-mini');
const tmp = tempDir('fmnist');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => useTestBackend());

/** An IDX file: magic 0x00000800 | rank, big-endian dims, bytes. */
function idx(shape: number[], data: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * shape.length);
  head[2] = 0x08;
  head[3] = shape.length;
  shape.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

describe('IDX files', () => {
  test('plain and gzip', () => {
    const raw = idx([2, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for (const bytes of [raw, zlib.gzipSync(raw)]) {
      const a = parseIdx(bytes);
      expect(a.shape).toEqual([2, 2, 3]);
      expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    }
  });

  test('malformed files are clear errors', () => {
    expect(() => parseIdx(Buffer.from([1, 2, 3, 4]), 'x.idx')).toThrow(/x.idx: not an IDX file/);
    const f32 = idx([1], [0, 0, 0, 0]);
    f32[2] = 0x0d;
    expect(() => parseIdx(f32, 'y')).toThrow(/element type 0xd is not uint8/);
    expect(() => parseIdx(idx([2, 2], [1, 2, 3]), 'z')).toThrow(/header says \[2,2\] \(4 bytes\) but 3 data bytes follow/);
    expect(() => parseIdx(Buffer.from([0x1f, 0x8b, 0, 0]), 'g')).toThrow(/g: corrupt gzip data/);
    expect(() => readFashionMnist(path.join(tmp, 'nowhere'), 'train')).toThrow(/cannot read \(ENOENT\); install the Debian package dataset-fashion-mnist/);
  });
});

describe('captions', () => {
  test('three correct phrasings pass the threshold 25, the wrong one never does and names another class', () => {
    for (let i = 0; i < 500; i++) {
      const label = i % 10;
      const { captions, clip_scores } = fashionMnistCaptions('train', i, label);
      expect(captions.prompt).toBe(FASHION_MNIST_CLASSES[label].prompt);
      for (const k of ['prompt', 'short', 'detailed'] as const) {
        expect(captions[k]).toContain(FASHION_MNIST_CLASSES[label].noun);
        expect(clip_scores[k]).toBeGreaterThanOrEqual(25);
      }
      expect(clip_scores.wrong).toBeLessThan(CAPTION_SCORE_RANGES.wrong[1]);
      expect(clip_scores.wrong).toBeLessThan(25);
      expect(captions.wrong).not.toBe(captions.prompt);
      expect(FASHION_MNIST_CLASSES.some((c) => c.label !== label && c.prompt === captions.wrong)).toBe(true);
    }
    expect(fashionMnistCaptions('test', 3, 1)).toEqual(fashionMnistCaptions('test', 3, 1));
  });

  test('class prompts', () => {
    expect(FASHION_MNIST_CLASSES.map((c) => c.prompt)).toEqual([
      'a photo of a t-shirt', 'a photo of a pair of trousers', 'a photo of a pullover', 'a photo of a dress', 'a photo of a coat',
      'a photo of a sandal', 'a photo of a shirt', 'a photo of a sneaker', 'a photo of a bag', 'a photo of an ankle boot',
    ]);
  });
});

describe('conversion', () => {
  test('a synthetic split converts to a dataset that opens', async () => {
    const n = 12;
    const images = Array.from({ length: n * 28 * 28 }, (_, i) => (i * 7) % 256);
    const labels = Array.from({ length: n }, (_, i) => i % 10);
    const data = { images: Uint8Array.from(images), labels: Uint8Array.from(labels), count: n, height: 28, width: 28 };
    const subset = balancedSubset(data.labels, 1);
    expect(subset).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const out = path.join(tmp, 'synthetic');
    expect(writeFashionMnistDataset(out, 'test', data, [11, 3])).toBe(2);
    const entries = readManifest(path.join(out, 'manifest.jsonl'));
    expect(entries.map((e) => [e.id, e.meta])).toEqual([['test-00011', { label: 1, class: 'Trouser' }], ['test-00003', { label: 3, class: 'Dress' }]]);
    const ds = await ImageDataset.open(out, { buckets: squareBucketTable(28), channels: 1 });
    const x = await ds.pixels([0]);
    const got = Array.from(x.dataSync()).slice(0, 5);
    x.dispose();
    const src = images.slice(11 * 784, 11 * 784 + 5);
    got.forEach((v, i) => expect(v).toBeCloseTo((src[i] / 255 - 0.5) / 0.5, 6));
  });

  const haveIdx = fs.existsSync(path.join(DEFAULT_FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'));
  (haveIdx ? test : test.skip)('the installed IDX files read as 10 000 test images in 10 classes', () => {
    const d = readFashionMnist(DEFAULT_FASHION_MNIST_DIR, 'test');
    expect([d.count, d.height, d.width]).toEqual([10000, 28, 28]);
    expect(new Set(d.labels).size).toBe(10);
  });
});

describe('bundled subset data/fashion-mnist-mini', () => {
  test('both splits: balanced classes, four captions, pack images', async () => {
    const train = readManifest(path.join(MINI, 'train', 'manifest.jsonl'));
    const test_ = readManifest(path.join(MINI, 'test', 'manifest.jsonl'));
    expect([train.length, test_.length]).toEqual([2000, 500]);
    const perClass = new Array(10).fill(0);
    for (const e of train) perClass[e.meta!.label as number]++;
    expect(perClass).toEqual(new Array(10).fill(200));
    expect(train[0].captions.map((c) => c.key)).toEqual(['prompt', 'short', 'detailed', 'wrong']);
    const bytes = ['train', 'test'].reduce((s, d) => s + fs.readdirSync(path.join(MINI, d)).reduce((t, f) => t + fs.statSync(path.join(MINI, d, f)).size, 0), 0);
    expect(bytes).toBeLessThan(5 * 1024 * 1024);
  });

  const haveIdx = fs.existsSync(path.join(DEFAULT_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
  (haveIdx ? test : test.skip)('matches the original IDX images and labels', async () => {
    const src = readFashionMnist(DEFAULT_FASHION_MNIST_DIR, 'test');
    const ds = await ImageDataset.open(path.join(MINI, 'test'), { buckets: squareBucketTable(28), channels: 1 });
    for (const j of [0, 17, 499]) {
      const item = ds.items[j];
      const orig = Number(item.id.slice('test-'.length));
      expect(item.meta!.label).toBe(src.labels[orig]);
      const x = await ds.pixels([j]);
      const got = x.dataSync();
      const want = src.images.subarray(orig * 784, (orig + 1) * 784);
      for (const p of [0, 300, 405, 783]) expect(got[p]).toBeCloseTo((want[p] / 255 - 0.5) / 0.5, 6);
      x.dispose();
    }
  });

  test('training batches at 32x32 RGB: the wrong caption is never drawn; no leak', async () => {
    const ds = await ImageDataset.open(path.join(MINI, 'train'), { buckets: squareBucketTable(32) });
    expect(ds.skipped).toHaveLength(0);
    const src = new BatchSource(ds, { seed: 0, batchSize: 16 });
    expect(src.batchesPerEpoch).toBe(125);
    const keys: Record<string, number> = {};
    for (let k = 0; k < 250; k++) for (const key of src.info(k).captionKeys) keys[key] = (keys[key] ?? 0) + 1;
    expect(keys.wrong).toBeUndefined();
    expect(keys.prompt + keys.short + keys.detailed).toBe(250 * 16);
    expect(Math.min(keys.prompt, keys.short, keys.detailed)).toBeGreaterThan(0);
    let step = 0;
    await expectNoLeak(async () => {
      const b = await src.batch(step++);
      expect(b.x.shape).toEqual([16, 32, 32, 3]);
      expect(b.imageIds.every((id) => id.startsWith('train-'))).toBe(true);
      const range = tf.tidy(() => [b.x.min().dataSync()[0], b.x.max().dataSync()[0]]);
      expect(range[0]).toBeGreaterThanOrEqual(-1);
      expect(range[1]).toBeLessThanOrEqual(1);
      disposeBatch(b);
    });
  });
});
