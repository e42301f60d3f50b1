/**
 * An opened dataset folder: the images that decode, each with its captions, size and bucket.
 *
 * Plays the role of NVlabs/Sana's `SanaImgDataset` / `SanaWebDatasetMS` index (`diffusion/data/datasets/`),
 * but validates every image once when opened instead of retrying another index at training time: an
 * unreadable, corrupt or truncated image is skipped, counted in `skipped`, and reported through
 * `onWarning` with its file name, so a run never fails on step 40 000 because of one bad file.
 */
import { tf, Tensor4D } from '../backend';
import { Bucket, BucketTable, bucketCounts, nearestBucket, validateBucketTable } from './buckets';
import { describeImageRef, ImageDecodeError, ImageReader, toSignedUnit } from './images';
import { DatasetEntry, readDatasetEntries, SkippedImage } from './manifest';

export interface ImageDatasetOptions {
  /** Training sizes by aspect ratio (`squareBucketTable(32)` or a SANA table from aspectRatios). */
  buckets: BucketTable;
  /** 3 (RGB, default) or 1 (grey, for small pixel-space experiments). */
  channels?: 1 | 3;
  /** Plain folders: an image with no `.txt` is an error (default) or a counted skip. */
  missingCaption?: 'error' | 'skip';
  /** Receives one line per skipped image (only the CLI prints). */
  onWarning?: (message: string) => void;
  /** Use only the first `limit` entries (quick experiments). */
  limit?: number;
  /** Images decoded at once while opening (default 4). */
  concurrency?: number;
  /** Host memory for bucket-sized pixels kept between epochs, in MiB (default 256; 0 disables). */
  memoryCacheMB?: number;
}

/** An image that decoded, with what the loader needs to place it in a batch. */
export interface DatasetItem extends DatasetEntry {
  height: number;
  width: number;
  contentHash: string;
  bucket: Bucket;
}

/** Runs `fn` over 0..n-1 with at most `limit` calls in flight; results keep their index. */
async function mapPool<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}

export class ImageDataset {
  readonly channels: 1 | 3;
  private readonly cache = new Map<number, Uint8Array>();
  private cacheBytes = 0;
  private readonly cacheLimit: number;

  private constructor(
    readonly dir: string,
    readonly layout: 'manifest' | 'folder',
    readonly items: readonly DatasetItem[],
    /** Images left out (missing caption file, unreadable or corrupt image), each with its reason. */
    readonly skipped: readonly SkippedImage[],
    readonly buckets: BucketTable,
    private readonly reader: ImageReader,
    options: ImageDatasetOptions,
  ) {
    this.channels = options.channels ?? 3;
    this.cacheLimit = (options.memoryCacheMB ?? 256) * 1024 * 1024;
  }

  /** Reads the folder's entries, decodes every image once, and assigns buckets. */
  static async open(dir: string, options: ImageDatasetOptions): Promise<ImageDataset> {
    validateBucketTable(options.buckets);
    if (options.channels !== undefined && options.channels !== 1 && options.channels !== 3) {
      throw new Error(`dataset ${dir}: channels must be 1 or 3, got ${options.channels}`);
    }
    const warn = options.onWarning ?? (() => undefined);
    const list = readDatasetEntries(dir, { missingCaption: options.missingCaption });
    const entries = options.limit !== undefined ? list.entries.slice(0, options.limit) : list.entries;
    const skipped: SkippedImage[] = [...list.skipped];
    for (const s of list.skipped) warn(`skipped image ${s.file}: ${s.reason}`);

    const reader = new ImageReader();
    const probes = await mapPool(entries.length, options.concurrency ?? 4, async (i) => {
      try {
        return await reader.probe(entries[i].image);
      } catch (e) {
        if (e instanceof ImageDecodeError) return e;
        throw e;
      }
    });
    const items: DatasetItem[] = [];
    entries.forEach((entry, i) => {
      const p = probes[i];
      if (p instanceof ImageDecodeError) {
        const reason = p.message.startsWith(`${p.file}: `) ? p.message.slice(p.file.length + 2) : p.message;
        skipped.push({ id: entry.id, file: describeImageRef(entry.image), reason });
        warn(`skipped image ${describeImageRef(entry.image)} (id ${entry.id}): ${reason}`);
        return;
      }
      items.push({ ...entry, height: p.height, width: p.width, contentHash: p.contentHash, bucket: nearestBucket(p.height, p.width, options.buckets) });
    });
    if (items.length === 0) {
      const first = skipped.slice(0, 3).map((s) => `${s.file}: ${s.reason}`).join('; ');
      throw new Error(`dataset ${dir}: no usable images (${skipped.length} skipped${first ? `, e.g. ${first}` : ''})`);
    }
    return new ImageDataset(dir, list.layout, items, skipped, options.buckets, reader, options);
  }

  get size(): number {
    return this.items.length;
  }

  /** Number of images per bucket key, in table order. */
  bucketCounts(): Record<string, number> {
    return bucketCounts(this.items.map((it) => it.bucket.key), this.buckets);
  }

  /** Item `index` fitted to its bucket: uint8 [height, width, channels]. Cached within `memoryCacheMB`. */
  async pixelsU8(index: number): Promise<Uint8Array> {
    const hit = this.cache.get(index);
    if (hit) return hit;
    const it = this.items[index];
    if (!it) throw new RangeError(`dataset ${this.dir}: no item ${index} (size ${this.items.length})`);
    const u8 = await this.reader.fitToSize(it.image, it.bucket.height, it.bucket.width, this.channels);
    if (this.cacheBytes + u8.length <= this.cacheLimit) {
      this.cache.set(index, u8);
      this.cacheBytes += u8.length;
    }
    return u8;
  }

  /**
   * Items `indices` (all of one bucket size) as pixels in [-1, 1]: [B, H, W, C] NHWC float32.
   */
  async pixels(indices: readonly number[]): Promise<Tensor4D> {
    if (indices.length === 0) throw new Error(`dataset ${this.dir}: pixels() needs at least one item`);
    const bucket = this.items[indices[0]]?.bucket;
    if (!bucket) throw new RangeError(`dataset ${this.dir}: no item ${indices[0]}`);
    for (const i of indices) {
      // Same size is what stacking needs (a rescaled table may give two ratio keys the same size).
      const b = this.items[i]?.bucket;
      if (!b || b.height !== bucket.height || b.width !== bucket.width) {
        throw new Error(`dataset ${this.dir}: item ${i} is not ${bucket.height}x${bucket.width} like item ${indices[0]} (batches hold one bucket)`);
      }
    }
    const per = bucket.height * bucket.width * this.channels;
    const host = new Float32Array(indices.length * per);
    const u8s = await Promise.all(indices.map((i) => this.pixelsU8(i)));
    u8s.forEach((u8, j) => toSignedUnit(u8, host, j * per));
    return tf.tidy(() => tf.tensor4d(host, [indices.length, bucket.height, bucket.width, this.channels]));
  }
}
