/**
 * The order in which images are drawn: batches of one bucket each, reproducible from (seed, step).
 *
 * Follows the idea of SANA's aspect-ratio batch sampler (NVlabs/Sana `diffusion/data/datasets/utils.py`
 * via PixArt's `AspectRatioBatchSampler`): walk a shuffled list of all images, append each to its bucket,
 * and emit a batch whenever a bucket holds `batchSize` images. Here the shuffle of epoch e comes from
 * `rngFor(seed, 'data/shuffle', e)`, so the batch at any step is a pure function of (seed, step): a
 * resumed run draws exactly the batches an uninterrupted run would, with no sampler state to save.
 */
import { rngFor } from '../nn/random';

export interface BatchPlanOptions {
  seed: number;
  batchSize: number;
  /** Drop each epoch's incomplete per-bucket batches (default true, so every batch has `batchSize` images). */
  dropLast?: boolean;
}

export interface PlannedBatch {
  /** Global batch counter (the trainer's micro-step). */
  step: number;
  epoch: number;
  /** Position of this batch within its epoch. */
  indexInEpoch: number;
  bucketKey: string;
  /** Indices into the dataset's item list. */
  items: number[];
}

export class BatchPlan {
  readonly batchesPerEpoch: number;
  private readonly seed: number;
  private readonly batchSize: number;
  private readonly dropLast: boolean;
  private cached: { epoch: number; batches: Array<{ bucketKey: string; items: number[] }> } | null = null;

  /** `bucketOf[i]` is item i's bucket key. */
  constructor(private readonly bucketOf: readonly string[], options: BatchPlanOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) throw new Error(`batch plan: batch size must be a positive integer, got ${options.batchSize}`);
    if (!Number.isInteger(options.seed)) throw new Error(`batch plan: seed must be an integer, got ${options.seed}`);
    this.seed = options.seed;
    this.batchSize = options.batchSize;
    this.dropLast = options.dropLast ?? true;
    const counts = new Map<string, number>();
    for (const k of bucketOf) counts.set(k, (counts.get(k) ?? 0) + 1);
    let n = 0;
    for (const c of counts.values()) n += this.dropLast ? Math.floor(c / this.batchSize) : Math.ceil(c / this.batchSize);
    if (n === 0) {
      const sizes = [...counts.entries()].map(([k, c]) => `${k}: ${c}`).join(', ');
      throw new Error(`batch plan: no bucket has ${this.batchSize} images for a full batch (images per bucket: ${sizes || 'none'}); lower the batch size or set drop_last: false`);
    }
    this.batchesPerEpoch = n;
  }

  /** All batches of `epoch`, in draw order. */
  epochBatches(epoch: number): ReadonlyArray<{ bucketKey: string; items: number[] }> {
    if (this.cached && this.cached.epoch === epoch) return this.cached.batches;
    const order = rngFor(this.seed, 'data/shuffle', epoch).permutation(this.bucketOf.length);
    const open = new Map<string, number[]>();
    const batches: Array<{ bucketKey: string; items: number[] }> = [];
    for (const i of order) {
      const key = this.bucketOf[i];
      let list = open.get(key);
      if (!list) open.set(key, (list = []));
      list.push(i);
      if (list.length === this.batchSize) {
        batches.push({ bucketKey: key, items: list });
        open.set(key, []);
      }
    }
    if (!this.dropLast) {
      // Incomplete batches go last, in the order their buckets were first opened.
      for (const [key, list] of open) if (list.length) batches.push({ bucketKey: key, items: list });
    }
    this.cached = { epoch, batches };
    return batches;
  }

  /** The batch drawn at global `step` (0-based). */
  at(step: number): PlannedBatch {
    if (!Number.isInteger(step) || step < 0) throw new Error(`batch plan: step must be a non-negative integer, got ${step}`);
    const epoch = Math.floor(step / this.batchesPerEpoch);
    const indexInEpoch = step % this.batchesPerEpoch;
    const b = this.epochBatches(epoch)[indexInEpoch];
    return { step, epoch, indexInEpoch, bucketKey: b.bucketKey, items: [...b.items] };
  }
}
