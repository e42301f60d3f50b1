/**
 * Aspect-ratio buckets: which training size an image gets, and how it is resized and cropped to it.
 *
 * Mirrors NVlabs/Sana `diffusion/data/datasets/sana_data_multi_scale.py` (`SanaWebDatasetMS.getdata`) with
 * `get_closest_ratio` from `diffusion/data/datasets/utils.py`: the bucket is the table entry whose ratio
 * key (height / width) is nearest to the image's height / width (the first such key on ties, as Python's
 * `min` picks); the image is resized so that it covers the bucket (the side with the larger scale factor
 * is set exactly, the other truncated to an integer), then center-cropped with torchvision's
 * `CenterCrop` offsets (`int(round((h - th) / 2))`, round half to even). The nearest-ratio rule and SANA's
 * bin tables live in `aspectRatios.ts` (shared with sampling); this file adapts them to training.
 */
import { AspectRatioBin, aspectRatioBins, BIN_RESOLUTIONS, nearestAspectRatioBin } from './aspectRatios';

/** Ratio key (height / width, as SANA writes it: '0.25', '1.0') -> [height, width] in pixels. */
export type BucketTable = Readonly<Record<string, readonly [number, number]>>;

export interface Bucket {
  /** The table's ratio key. */
  key: string;
  /** height / width of the key. */
  ratio: number;
  height: number;
  width: number;
}

/** A one-entry table for square training at `resolution` (SANA's non-multi-scale mode). */
export function squareBucketTable(resolution: number): BucketTable {
  if (!Number.isInteger(resolution) || resolution <= 0) throw new Error(`bucket table: resolution must be a positive integer, got ${resolution}`);
  return { '1.0': [resolution, resolution] };
}

/** Checks that every entry is [height, width] of positive integers and every key a number. */
export function validateBucketTable(table: BucketTable, what = 'bucket table'): BucketTable {
  const keys = Object.keys(table);
  if (keys.length === 0) throw new Error(`${what}: no buckets`);
  for (const k of keys) {
    const v = table[k];
    if (!Number.isFinite(Number(k))) throw new Error(`${what}: key "${k}" is not a ratio (height / width)`);
    if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && x > 0)) {
      throw new Error(`${what}: "${k}" must be [height, width] in whole pixels, got ${JSON.stringify(v)}`);
    }
  }
  return table;
}

/** The bucket of an image of `height` x `width`: nearest ratio key, first on ties (the rule of aspectRatios). */
export function nearestBucket(height: number, width: number, table: BucketTable): Bucket {
  const bins = Object.entries(table).map(([ratio, [h, w]]) => ({ ratio, height: h, width: w }));
  const bin = nearestAspectRatioBin(height, width, bins);
  return { key: bin.ratio, ratio: Number(bin.ratio), height: bin.height, width: bin.width };
}

/** A SANA bin list as a bucket table (same order, so the same ties). */
export function bucketTableFromBins(bins: readonly AspectRatioBin[]): BucketTable {
  const table: Record<string, readonly [number, number]> = {};
  for (const b of bins) table[b.ratio] = [b.height, b.width];
  return table;
}

export interface TrainingBucketOptions {
  /** Multi-scale (aspect-ratio buckets) instead of square training. */
  multiScale: boolean;
  /** Sides of a rescaled table are rounded to a multiple of this (default 32, the DC-AE factor). */
  align?: number;
}

/**
 * The bucket table for training at `resolution`: a single square bucket, or with `multiScale` SANA's
 * bins for that base resolution (512, 1024, 2048, 4096). Other resolutions get the 1024 bins scaled by
 * resolution / 1024, each side rounded to a multiple of `align` (at least `align`).
 */
export function trainingBucketTable(resolution: number, options: TrainingBucketOptions): BucketTable {
  if (!options.multiScale) return squareBucketTable(resolution);
  if ((BIN_RESOLUTIONS as readonly number[]).includes(resolution)) return bucketTableFromBins(aspectRatioBins(resolution));
  const align = options.align ?? 32;
  if (!Number.isInteger(align) || align <= 0) throw new Error(`bucket table: align must be a positive integer, got ${align}`);
  if (!Number.isInteger(resolution) || resolution <= 0) throw new Error(`bucket table: resolution must be a positive integer, got ${resolution}`);
  const scale = resolution / 1024;
  const snap = (x: number): number => Math.max(align, Math.round((x * scale) / align) * align);
  return bucketTableFromBins(aspectRatioBins(1024).map((b) => ({ ratio: b.ratio, height: snap(b.height), width: snap(b.width) })));
}

/**
 * Size to resize a `srcH` x `srcW` image to before center-cropping to `dstH` x `dstW`: the side whose
 * scale factor is larger is set exactly and the other scaled with it (truncated), so the crop is covered.
 */
export function coverResizeSize(srcH: number, srcW: number, dstH: number, dstW: number): { height: number; width: number } {
  // The max() only matters when float rounding truncates a covering side one pixel short (SANA would
  // then pad the crop with zeros); it never changes a size that already covers.
  if (dstH / srcH > dstW / srcW) return { height: dstH, width: Math.max(dstW, Math.trunc((srcW * dstH) / srcH)) };
  return { height: Math.max(dstH, Math.trunc((srcH * dstW) / srcW)), width: dstW };
}

/** Python's `round`: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Top-left corner of a `cropH` x `cropW` center crop of an `h` x `w` image (torchvision's offsets). */
export function centerCropOffset(h: number, w: number, cropH: number, cropW: number): { top: number; left: number } {
  if (cropH > h || cropW > w) throw new Error(`center crop ${cropH}x${cropW} is larger than the ${h}x${w} image`);
  return { top: roundHalfEven((h - cropH) / 2), left: roundHalfEven((w - cropW) / 2) };
}

/** Bucket key -> number of items, in table order (buckets with no item left out). */
export function bucketCounts(keys: readonly string[], table: BucketTable): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const k of Object.keys(table)) counts[k] = 0;
  for (const k of keys) counts[k] = (counts[k] ?? 0) + 1;
  for (const k of Object.keys(counts)) if (counts[k] === 0) delete counts[k];
  return counts;
}
