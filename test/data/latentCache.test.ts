/**
 * The latent cache: computed once per (image content, encoder identity, bucket), reused across runs,
 * re-encoded when an image changes or the encoder differs; latent-space batches read from it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { tf, Tensor4D } from '../../src/backend';
import { BatchSource, disposeBatch } from '../../src/data/batches';
import { squareBucketTable } from '../../src/data/buckets';
import { ImageDataset } from '../../src/data/dataset';
import { LatentCache, LatentEncoder } from '../../src/data/latentCache';
import { expectNoLeak, useTestBackend } from '../helpers';
import { tempDir, writeJsonl, writePng } from './fixtures';

const tmp = tempDir('latents');
const dsDir = path.join(tmp, 'ds');
const cacheDir = path.join(tmp, 'cache');

/** A stand-in for DC-AE: 4x4 average pooling times a scale, with a call counter. */
function poolEncoder(scale: number, identity = `pool4-x${scale}`): LatentEncoder & { images: number } {
  const enc = {
    identity,
    images: 0,
    encode(pixels: Tensor4D): Tensor4D {
      enc.images += pixels.shape[0];
      return tf.tidy(() => tf.avgPool(pixels, 4, 4, 'valid').mul(scale) as Tensor4D);
    },
  };
  return enc;
}

beforeAll(async () => {
  await useTestBackend();
  const lines = [];
  for (let i = 0; i < 7; i++) {
    await writePng(path.join(dsDir, `im${i}.png`), i === 6 ? 8 : 16, 16, i);
    lines.push({ id: `im${i}`, image: `im${i}.png`, caption: `image ${i}` });
  }
  writeJsonl(path.join(dsDir, 'manifest.jsonl'), lines);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TABLE = { '0.5': [8, 16], '1.0': [16, 16] } as const;

test('encodes once, in shards, per bucket; a second build reuses everything', async () => {
  const ds = await ImageDataset.open(dsDir, { buckets: TABLE });
  const enc = poolEncoder(0.5);
  const progress: number[] = [];
  const cache = await LatentCache.build(ds, enc, { dir: cacheDir, batchSize: 4, shardSize: 4, onProgress: (d) => progress.push(d) });
  expect([cache.encoded, cache.reused, enc.images]).toEqual([7, 0, 7]);
  expect(progress[progress.length - 1]).toBe(7);
  const root = LatentCache.encoderDir(cacheDir, enc.identity);
  expect(JSON.parse(fs.readFileSync(path.join(root, 'encoder.json'), 'utf8')).encoder).toBe('pool4-x0.5');
  expect(fs.readdirSync(path.join(root, '16x16-c3')).sort()).toEqual(['shard-00000.safetensors', 'shard-00001.safetensors']);
  expect(fs.readdirSync(path.join(root, '8x16-c3'))).toEqual(['shard-00000.safetensors']);
  expect(cache.shapeOf(0)).toEqual([4, 4, 3]);
  expect(cache.shapeOf(6)).toEqual([2, 4, 3]);

  // Cached latents equal a direct encode.
  const pixels = await ds.pixels([2, 0]);
  const expected = enc.encode(pixels);
  const got = cache.read([2, 0]);
  expect(got.shape).toEqual([2, 4, 4, 3]);
  expect(Array.from(got.dataSync())).toEqual(Array.from(expected.dataSync()));
  tf.dispose([pixels, expected, got]);
  cache.close();

  const enc2 = poolEncoder(0.5);
  const again = await LatentCache.build(ds, enc2, { dir: cacheDir });
  expect([again.encoded, again.reused, enc2.images]).toEqual([0, 7, 0]);
  again.close();
});

test('another encoder identity gets its own cache; an edited image is encoded again', async () => {
  const ds = await ImageDataset.open(dsDir, { buckets: TABLE });
  const other = poolEncoder(2);
  const c1 = await LatentCache.build(ds, other, { dir: cacheDir });
  expect(c1.encoded).toBe(7);
  c1.close();

  await writePng(path.join(dsDir, 'im3.png'), 16, 16, 99);
  const edited = await ImageDataset.open(dsDir, { buckets: TABLE });
  const enc = poolEncoder(2);
  const c2 = await LatentCache.build(edited, enc, { dir: cacheDir });
  expect([c2.encoded, c2.reused]).toEqual([1, 6]);
  const fresh = await edited.pixels([3]);
  const want = enc.encode(fresh);
  const got = c2.read([3]);
  expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()));
  tf.dispose([fresh, want, got]);
  c2.close();
});

test('latent-space batches read the cache without leaking', async () => {
  const ds = await ImageDataset.open(dsDir, { buckets: squareBucketTable(16) });
  const cache = await LatentCache.build(ds, poolEncoder(1), { dir: cacheDir });
  const src = new BatchSource(ds, { seed: 4, batchSize: 3, latents: cache });
  expect(src.space).toBe('latent');
  let step = 0;
  await expectNoLeak(async () => {
    const b = await src.batch(step++);
    expect(b.space).toBe('latent');
    expect(b.x.shape).toEqual([3, 4, 4, 3]);
    disposeBatch(b);
  });
  cache.close();
});

test('an encoder returning the wrong batch size is a clear error, and leaks nothing', async () => {
  const ds = await ImageDataset.open(dsDir, { buckets: TABLE });
  const bad: LatentEncoder = { identity: 'bad', encode: (x) => tf.tidy(() => x.slice([0, 0, 0, 0], [1, -1, -1, -1]) as Tensor4D) };
  const before = tf.memory().numTensors;
  await expect(LatentCache.build(ds, bad, { dir: cacheDir, batchSize: 2 })).rejects.toThrow(/encoder "bad" returned shape \[1,16,16,3\] for 2 images; expected \[2, h, w, c\]/);
  expect(tf.memory().numTensors).toBe(before);
  await expect(LatentCache.build(ds, { identity: '', encode: (x) => x }, { dir: cacheDir })).rejects.toThrow(/needs a non-empty identity/);
});
