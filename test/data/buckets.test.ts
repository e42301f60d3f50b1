/**
 * Bucket assignment and the resize/crop geometry of NVlabs/Sana `sana_data_multi_scale.py`:
 * nearest ratio key (h/w), resize to cover, torchvision CenterCrop offsets.
 */
import { BatchPlan } from '../../src/data/batchPlan';
import { ASPECT_RATIO_512_BIN } from '../../src/data/aspectRatios';
import {
  bucketCounts,
  bucketTableFromBins,
  centerCropOffset,
  coverResizeSize,
  nearestBucket,
  squareBucketTable,
  trainingBucketTable,
  validateBucketTable,
} from '../../src/data/buckets';

// A few rows of SANA's ASPECT_RATIO_512 (ratio = height / width -> [height, width]).
const TABLE = {
  '0.25': [256, 1024],
  '0.5': [352, 704],
  '0.6': [384, 640],
  '1.0': [512, 512],
  '1.5': [640, 416],
  '2.0': [704, 352],
} as const;

describe('nearest bucket', () => {
  test.each([
    [512, 512, '1.0'],
    [1000, 1010, '1.0'],
    [480, 640, '0.6'], // 0.75: |0.75 - 0.6| < |0.75 - 1.0|
    [1080, 1920, '0.6'], // 0.5625
    [100, 1000, '0.25'],
    [2000, 1000, '2.0'],
    [1300, 1000, '1.5'], // 1.3
  ])('%dx%d -> %s', (h, w, key) => {
    const b = nearestBucket(h, w, TABLE);
    expect(b.key).toBe(key);
    expect([b.height, b.width]).toEqual(TABLE[key as keyof typeof TABLE]);
    expect(b.ratio).toBe(Number(key));
  });

  test('ties go to the first key in table order, as Python min does', () => {
    // 0.75 is exactly (in binary too) halfway between 0.5 and 1.0.
    expect(nearestBucket(3, 4, { '0.5': [4, 8], '1.0': [8, 8] }).key).toBe('0.5');
    expect(nearestBucket(3, 4, { '1.0': [8, 8], '0.5': [4, 8] }).key).toBe('1.0');
  });

  test('square table and validation', () => {
    expect(squareBucketTable(32)).toEqual({ '1.0': [32, 32] });
    expect(nearestBucket(28, 28, squareBucketTable(32))).toEqual({ key: '1.0', ratio: 1, height: 32, width: 32 });
    expect(() => squareBucketTable(0)).toThrow(/positive integer/);
    expect(() => validateBucketTable({ wide: [1, 2] })).toThrow(/key "wide" is not a ratio/);
    expect(() => validateBucketTable({ '1.0': [32.5, 32] } as never)).toThrow(/"1.0" must be \[height, width\] in whole pixels/);
    expect(() => validateBucketTable({})).toThrow(/no buckets/);
  });

  test('training tables: square, SANA bins, rescaled bins', () => {
    expect(trainingBucketTable(64, { multiScale: false })).toEqual({ '1.0': [64, 64] });
    const t512 = trainingBucketTable(512, { multiScale: true });
    expect(t512).toEqual(bucketTableFromBins(ASPECT_RATIO_512_BIN));
    expect(Object.keys(t512)).toEqual(ASPECT_RATIO_512_BIN.map((b) => b.ratio)); // order kept: same ties
    expect(t512['1.0']).toEqual([512, 512]);
    expect(nearestBucket(1080, 1920, t512)).toEqual({ key: '0.57', ratio: 0.57, height: 384, width: 672 });
    // 256: the 1024 bins scaled by 1/4, sides snapped to multiples of 32.
    const t256 = trainingBucketTable(256, { multiScale: true });
    expect(t256['1.0']).toEqual([256, 256]);
    expect(t256['0.25']).toEqual([128, 512]);
    expect(Object.values(t256).every(([h, w]) => h % 32 === 0 && w % 32 === 0)).toBe(true);
    expect(trainingBucketTable(64, { multiScale: true, align: 8 })['0.5']).toEqual([48, 88]); // 704/16=44 -> 48, 1408/16=88
    expect(() => trainingBucketTable(64, { multiScale: true, align: 0 })).toThrow(/align must be a positive integer/);
  });

  test('counts per bucket', () => {
    expect(bucketCounts(['1.0', '0.5', '1.0'], TABLE)).toEqual({ '0.5': 1, '1.0': 2 });
  });
});

describe('resize to cover, center crop', () => {
  test.each([
    // [srcH, srcW, dstH, dstW, resizeH, resizeW]
    [28, 28, 32, 32, 32, 32],
    [480, 640, 384, 640, 480, 640], // width scale 1.0 > height scale 0.8: width exact, height 480
    [1080, 1920, 384, 640, 384, 682], // height scale 0.3556 > 0.3333: height exact, width int(1920*384/1080)=682
    [1000, 333, 704, 352, 1057, 352], // int(1000*352/333) = 1057
  ])('%dx%d into %dx%d resizes to %dx%d', (sh, sw, dh, dw, rh, rw) => {
    expect(coverResizeSize(sh, sw, dh, dw)).toEqual({ height: rh, width: rw });
  });

  test('torchvision CenterCrop offsets: int(round((h - th) / 2)), halves to even', () => {
    expect(centerCropOffset(384, 682, 384, 640)).toEqual({ top: 0, left: 21 });
    expect(centerCropOffset(33, 33, 32, 32)).toEqual({ top: 0, left: 0 }); // round(0.5) = 0
    expect(centerCropOffset(35, 35, 32, 32)).toEqual({ top: 2, left: 2 }); // round(1.5) = 2
    expect(centerCropOffset(37, 32, 32, 32)).toEqual({ top: 2, left: 0 }); // round(2.5) = 2
    expect(() => centerCropOffset(10, 10, 12, 10)).toThrow(/larger than/);
  });
});

describe('batch plan', () => {
  // 10 images in bucket a, 7 in b, 2 in c.
  const bucketOf = [...'aaaaaaaaaa', ...'bbbbbbb', ...'cc'];

  test('batches hold one bucket; each epoch uses each image at most once; incomplete batches dropped', () => {
    const plan = new BatchPlan(bucketOf, { seed: 3, batchSize: 3 });
    expect(plan.batchesPerEpoch).toBe(3 + 2);
    for (const epoch of [0, 1, 2]) {
      const seen = new Set<number>();
      for (const b of plan.epochBatches(epoch)) {
        expect(b.items).toHaveLength(3);
        for (const i of b.items) {
          expect(bucketOf[i]).toBe(b.bucketKey);
          expect(seen.has(i)).toBe(false);
          seen.add(i);
        }
      }
    }
  });

  test('the batch at a step is a pure function of (seed, step): resuming draws the same batches', () => {
    const a = new BatchPlan(bucketOf, { seed: 11, batchSize: 2 });
    const sequential = Array.from({ length: 40 }, (_, k) => a.at(k));
    // A fresh plan (a resumed run) asked for steps out of order.
    const b = new BatchPlan(bucketOf, { seed: 11, batchSize: 2 });
    for (const k of [37, 5, 20, 0, 39, 8]) expect(b.at(k)).toEqual(sequential[k]);
    expect(sequential[9].epoch).toBe(1); // 5 + 3 + 1 = 9 batches per epoch
    expect(sequential[9].indexInEpoch).toBe(0);
    // Epochs are reshuffled, and another seed gives another order.
    expect(sequential.slice(0, 9).map((b) => b.items)).not.toEqual(sequential.slice(9, 18).map((b) => b.items));
    const c = new BatchPlan(bucketOf, { seed: 12, batchSize: 2 });
    expect(Array.from({ length: 9 }, (_, k) => c.at(k).items)).not.toEqual(sequential.slice(0, 9).map((b) => b.items));
  });

  test('dropLast false covers every image once per epoch', () => {
    const plan = new BatchPlan(bucketOf, { seed: 1, batchSize: 4, dropLast: false });
    expect(plan.batchesPerEpoch).toBe(3 + 2 + 1);
    const all = plan.epochBatches(0).flatMap((b) => b.items).sort((x, y) => x - y);
    expect(all).toEqual(bucketOf.map((_, i) => i));
  });

  test('errors: no full batch, bad options', () => {
    expect(() => new BatchPlan(['a', 'b'], { seed: 0, batchSize: 2 })).toThrow(/no bucket has 2 images for a full batch \(images per bucket: a: 1, b: 1\)/);
    expect(() => new BatchPlan(['a'], { seed: 0, batchSize: 0 })).toThrow(/batch size must be a positive integer/);
    expect(() => new BatchPlan(['a'], { seed: 0, batchSize: 1 }).at(-1)).toThrow(/step must be a non-negative integer/);
  });
});
