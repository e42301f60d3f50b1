/**
 * Opening dataset folders: decoding with sharp, counted skips of bad images, buckets, pixels in [-1, 1]
 * (x / 255 * 2 - 1 after resize-to-cover and center crop, as NVlabs/Sana's multi-scale dataset does),
 * and batches that are a pure function of (seed, step) with no tensor leak.
 */
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/backend';
import { BatchSource, disposeBatch } from '../../src/data/batches';
import { ImageDataset } from '../../src/data/dataset';
import { squareBucketTable } from '../../src/data/buckets';
import { expectNoLeak, useTestBackend } from '../helpers';
import { patternValue, tempDir, writeJsonl, writePng, writeTruncatedPng } from './fixtures';

const tmp = tempDir('dataset');
const TABLE = { '0.5': [8, 16], '1.0': [16, 16] } as const;

beforeAll(async () => {
  await useTestBackend();
  const img = (f: string) => path.join(tmp, 'ds', f);
  await writePng(img('a.png'), 16, 16, 1);
  await writePng(img('b.png'), 8, 16, 2);
  await writePng(img('c.png'), 16, 16, 3);
  await writePng(img('d.png'), 16, 16, 4);
  await writePng(img('tall.png'), 20, 16, 5);
  await writePng(img('big.png'), 40, 32, 6);
  await writeTruncatedPng(img('trunc.png'), 32, 32);
  fs.writeFileSync(img('garbage.png'), 'this is not an image');
  const line = (id: string, file: string, scores?: number[]) => ({
    id,
    image: file,
    captions: { prompt: `${id} right`, short: `${id}`, wrong: `${id} wrong` },
    ...(scores ? { clip_scores: { prompt: scores[0], short: scores[1], wrong: scores[2] } } : {}),
  });
  writeJsonl(img('manifest.jsonl'), [
    line('a', 'a.png', [31, 27, 12]),
    line('b', 'b.png', [30, 26, 20]),
    line('trunc', 'trunc.png', [30, 26, 20]),
    line('c', 'c.png', [30, 29, 24.9]),
    line('garbage', 'garbage.png'),
    line('d', 'd.png'),
    line('gone', 'missing.png', [30, 30, 30]),
    line('tall', 'tall.png', [33, 26, 3]),
    line('big', 'big.png', [28, 28, 10]),
  ]);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('opening a dataset', () => {
  test('corrupt, truncated and missing images are counted skips with a warning naming the file', async () => {
    const warnings: string[] = [];
    const ds = await ImageDataset.open(path.join(tmp, 'ds'), { buckets: TABLE, onWarning: (m) => warnings.push(m) });
    expect(ds.items.map((it) => it.id)).toEqual(['a', 'b', 'c', 'd', 'tall', 'big']);
    expect(ds.skipped.map((s) => s.id)).toEqual(['trunc', 'garbage', 'gone']);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/skipped image .*trunc\.png \(id trunc\): cannot decode image/);
    expect(warnings[1]).toMatch(/skipped image .*garbage\.png \(id garbage\): cannot decode image \(.*unsupported image format/);
    expect(warnings[2]).toMatch(/skipped image .*missing\.png \(id gone\): cannot read \(ENOENT\)/);
  });

  test('buckets: nearest ratio of the decoded size', async () => {
    const ds = await ImageDataset.open(path.join(tmp, 'ds'), { buckets: TABLE });
    const bucketOf = Object.fromEntries(ds.items.map((it) => [it.id, `${it.bucket.key} ${it.height}x${it.width}`]));
    expect(bucketOf).toEqual({ a: '1.0 16x16', b: '0.5 8x16', c: '1.0 16x16', d: '1.0 16x16', tall: '1.0 20x16', big: '1.0 40x32' });
    expect(ds.bucketCounts()).toEqual({ '0.5': 1, '1.0': 5 });
  });

  test('pixels: NHWC in [-1, 1], center crop without resize is exact', async () => {
    const ds = await ImageDataset.open(path.join(tmp, 'ds'), { buckets: TABLE });
    const idx = (id: string) => ds.items.findIndex((it) => it.id === id);
    const x = await ds.pixels([idx('a'), idx('tall')]);
    expect(x.shape).toEqual([2, 16, 16, 3]);
    const v = x.arraySync();
    x.dispose();
    // a: the pattern itself. tall (20x16): covers 16x16 without resizing, crop top = round(4 / 2) = 2.
    for (const [b, seed, top] of [[0, 1, 0], [1, 5, 2]]) {
      for (const [y, xx, c] of [[0, 0, 0], [3, 7, 1], [15, 15, 2], [9, 2, 0]]) {
        expect(v[b][y][xx][c]).toBeCloseTo((patternValue(y + top, xx, c, seed) / 255 - 0.5) / 0.5, 6);
      }
    }
    // big (40x32) is resized to 20x16 (bicubic), then cropped: values stay in range.
    const big = await ds.pixels([idx('big')]);
    expect(big.shape).toEqual([1, 16, 16, 3]);
    const [lo, hi] = [big.min().dataSync()[0], big.max().dataSync()[0]];
    tf.dispose(big);
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    await expect(ds.pixels([idx('a'), idx('b')])).rejects.toThrow(/item 1 is not 16x16 like item 0 \(batches hold one bucket\)/);
  });

  test('one channel: PIL luma weights', async () => {
    const ds = await ImageDataset.open(path.join(tmp, 'ds'), { buckets: TABLE, channels: 1 });
    const x = await ds.pixels([0]);
    expect(x.shape).toEqual([1, 16, 16, 1]);
    const got = x.arraySync()[0][3][5][0];
    x.dispose();
    const [r, g, b] = [0, 1, 2].map((c) => patternValue(3, 5, c, 1));
    expect(got).toBeCloseTo((Math.round((r * 299 + g * 587 + b * 114) / 1000) / 255 - 0.5) / 0.5, 6);
  });

  test('a dataset with no usable image is an error', async () => {
    const dir = path.join(tmp, 'allbad');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'x.png'), 'nope');
    fs.writeFileSync(path.join(dir, 'x.txt'), 'caption');
    await expect(ImageDataset.open(dir, { buckets: TABLE })).rejects.toThrow(/no usable images \(1 skipped, e\.g\. .*x\.png: cannot decode/);
  });

  test('plain folder with a missing caption file: error by default, counted skip on request', async () => {
    const dir = path.join(tmp, 'plain');
    await writePng(path.join(dir, 'one.png'), 16, 16);
    fs.writeFileSync(path.join(dir, 'one.txt'), 'a pattern');
    await writePng(path.join(dir, 'two.png'), 16, 16);
    await expect(ImageDataset.open(dir, { buckets: TABLE })).rejects.toThrow(/two\.png: no caption file/);
    const warnings: string[] = [];
    const ds = await ImageDataset.open(dir, { buckets: TABLE, missingCaption: 'skip', onWarning: (m) => warnings.push(m) });
    expect(ds.items.map((it) => it.id)).toEqual(['one']);
    expect(ds.skipped).toHaveLength(1);
    expect(warnings[0]).toMatch(/skipped image .*two\.png: no caption file two\.txt/);
  });
});

describe('batches', () => {
  let ds: ImageDataset;
  beforeAll(async () => {
    ds = await ImageDataset.open(path.join(tmp, 'ds'), { buckets: squareBucketTable(16) });
  });

  test('typed batches: ids, captions by CLIP score, bucket, pixels', async () => {
    const src = new BatchSource(ds, { seed: 5, batchSize: 2 });
    expect(src.batchesPerEpoch).toBe(3);
    expect(src.space).toBe('pixel');
    const b = await src.batch(0);
    try {
      expect(b.x.shape).toEqual([2, 16, 16, 3]);
      expect(b.imageIds).toHaveLength(2);
      expect(b.bucket).toEqual({ key: '1.0', ratio: 1, height: 16, width: 16 });
      b.imageIds.forEach((id, j) => {
        expect(b.captions[j]).toMatch(new RegExp(`^${id}`));
        expect(b.captionKeys[j]).not.toBe('wrong');
      });
    } finally {
      disposeBatch(b);
    }
  });

  test('never the below-threshold caption; fallbacks for unscored images', () => {
    const src = new BatchSource(ds, { seed: 9, batchSize: 3 });
    const keys: Record<string, Set<string>> = {};
    for (let k = 0; k < 300; k++) {
      const info = src.info(k);
      info.imageIds.forEach((id, j) => (keys[id] ??= new Set()).add(info.captionKeys[j]));
    }
    expect([...keys.d]).toEqual(['prompt']); // no scores: the first caption
    expect([...keys.tall].every((k) => k === 'prompt' || k === 'short')).toBe(true);
    for (const id of Object.keys(keys)) expect(keys[id].has('wrong')).toBe(false);
    // c's "short" (29) is drawn sometimes: (29/30)^10 / (1 + (29/30)^10) = 0.42.
    expect(keys.c.has('short')).toBe(true);
  });

  test('step k is a pure function of (seed, k): a resumed source draws the same batches', async () => {
    const a = new BatchSource(ds, { seed: 21, batchSize: 2 });
    const straight = Array.from({ length: 12 }, (_, k) => a.info(k));
    const resumed = new BatchSource(ds, { seed: 21, batchSize: 2 });
    for (const k of [6, 7, 11, 0]) expect(resumed.info(k)).toEqual(straight[k]);
    const x1 = await a.batch(7);
    const x2 = await resumed.batch(7);
    expect(Array.from(x1.x.dataSync())).toEqual(Array.from(x2.x.dataSync()));
    disposeBatch(x1);
    disposeBatch(x2);
    const other = new BatchSource(ds, { seed: 22, batchSize: 2 });
    expect(Array.from({ length: 12 }, (_, k) => other.info(k).imageIds)).not.toEqual(straight.map((s) => s.imageIds));
  });

  test('caption encoder output is attached and disposed with the batch; no tensor leak', async () => {
    const src = new BatchSource(ds, {
      seed: 1,
      batchSize: 2,
      encodeCaptions: (captions) => ({ embeddings: tf.ones([captions.length, 4, 8]), mask: tf.ones([captions.length, 4], 'int32') }),
    });
    let step = 0;
    await expectNoLeak(async () => {
      const b = await src.batch(step++);
      expect(b.text!.embeddings.shape).toEqual([2, 4, 8]);
      disposeBatch(b);
    });
  });

  test('a failing caption encoder frees the pixels', async () => {
    const src = new BatchSource(ds, { seed: 1, batchSize: 2, encodeCaptions: () => Promise.reject(new Error('encoder down')) });
    await src.batch(0).catch(() => undefined);
    const before = tf.memory().numTensors;
    await expect(src.batch(1)).rejects.toThrow('encoder down');
    expect(tf.memory().numTensors).toBe(before);
  });

  test('buckets too small for a batch are reported', async () => {
    const multi = await ImageDataset.open(path.join(tmp, 'ds'), { buckets: TABLE });
    const warnings: string[] = [];
    new BatchSource(multi, { seed: 0, batchSize: 2, onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual(['bucket 0.5 (8x16) has 1 image(s), fewer than the batch size 2: they are never drawn']);
  });
});
