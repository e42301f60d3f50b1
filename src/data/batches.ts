/**
 * Training batches: which images (per bucket), which caption of each, and the tensors the trainer needs.
 *
 * Takes the place of NVlabs/Sana's DataLoader + `AspectRatioBatchSampler` + dataset `__getitem__` loop
 * (`train_scripts/train.py`): everything about step k (its images, their captions, the pixels or cached
 * latents, the text conditioning) is a pure function of (seed, k), so a resumed run sees exactly the
 * batches of an uninterrupted one. Caption draws use `rngFor(seed, 'data/caption', k)`, one uniform per
 * image in batch order.
 */
import type { Tensor, Tensor4D } from '../backend';
import { rngFor } from '../nn/random';
import { BatchPlan } from './batchPlan';
import type { Bucket } from './buckets';
import { CaptionChoiceOptions, chooseCaption, DEFAULT_CAPTION_CHOICE, validateCaptionChoice } from './captionChoice';
import type { ImageDataset } from './dataset';
import type { LatentCache } from './latentCache';

/** Text conditioning for a batch, e.g. from the prompt encoder through the text-embedding cache. */
export interface TextConditioning {
  /** [B, T, D] */
  embeddings: Tensor;
  /** [B, T], 1 for real tokens */
  mask: Tensor;
}

/** Turns the batch's captions into conditioning; the batch owns (and disposes) what it returns. */
export type CaptionEncoder = (captions: string[]) => TextConditioning | Promise<TextConditioning>;

export interface BatchSourceOptions {
  seed: number;
  batchSize: number;
  /** Drop incomplete per-bucket batches at the end of each epoch (default true). */
  dropLast?: boolean;
  captionChoice?: CaptionChoiceOptions;
  /** Latent space: read `x` from this cache. Without it, `x` is pixels in [-1, 1] (pixel space). */
  latents?: LatentCache;
  /** Optional: conditioning for the chosen captions, attached as `batch.text`. */
  encodeCaptions?: CaptionEncoder;
  /** Receives notes such as buckets too small to ever fill a batch. */
  onWarning?: (message: string) => void;
}

/** Everything about a batch except tensors: cheap, and enough to name a batch in an error. */
export interface BatchInfo {
  step: number;
  epoch: number;
  indexInEpoch: number;
  bucket: Bucket;
  /** Indices into `dataset.items`. */
  items: number[];
  imageIds: string[];
  captions: string[];
  /** The caption type chosen for each image (`prompt`, `short`, ...). */
  captionKeys: string[];
  /** The chosen caption's CLIP score, or null when it has none. */
  clipScores: Array<number | null>;
}

export interface Batch extends BatchInfo {
  space: 'pixel' | 'latent';
  /** Clean samples: [B, H, W, C] pixels in [-1, 1], or [B, h, w, c] latents. NHWC float32. */
  x: Tensor4D;
  text?: TextConditioning;
}

/** Frees a batch's tensors. */
export function disposeBatch(batch: Batch): void {
  batch.x.dispose();
  if (batch.text) {
    batch.text.embeddings.dispose();
    batch.text.mask.dispose();
  }
}

export class BatchSource {
  readonly plan: BatchPlan;
  private readonly captionChoice: CaptionChoiceOptions;

  constructor(readonly dataset: ImageDataset, private readonly options: BatchSourceOptions) {
    this.captionChoice = validateCaptionChoice(options.captionChoice ?? DEFAULT_CAPTION_CHOICE);
    this.plan = new BatchPlan(dataset.items.map((it) => it.bucket.key), { seed: options.seed, batchSize: options.batchSize, dropLast: options.dropLast });
    if (options.dropLast ?? true) {
      for (const [key, n] of Object.entries(dataset.bucketCounts())) {
        if (n < options.batchSize) {
          const [h, w] = dataset.buckets[key];
          options.onWarning?.(`bucket ${key} (${h}x${w}) has ${n} image(s), fewer than the batch size ${options.batchSize}: they are never drawn`);
        }
      }
    }
  }

  get batchesPerEpoch(): number {
    return this.plan.batchesPerEpoch;
  }

  get space(): 'pixel' | 'latent' {
    return this.options.latents ? 'latent' : 'pixel';
  }

  /** The images and captions of step `step`, without loading anything. */
  info(step: number): BatchInfo {
    const planned = this.plan.at(step);
    const rng = rngFor(this.options.seed, 'data/caption', step);
    const items = planned.items.map((i) => this.dataset.items[i]);
    const choices = items.map((it) => chooseCaption(it.captions, this.captionChoice, rng));
    return {
      step,
      epoch: planned.epoch,
      indexInEpoch: planned.indexInEpoch,
      bucket: items[0].bucket,
      items: planned.items,
      imageIds: items.map((it) => it.id),
      captions: choices.map((c) => c.text),
      captionKeys: choices.map((c) => c.key),
      clipScores: choices.map((c) => c.clipScore),
    };
  }

  /** The batch of step `step` with its tensors; free them with `disposeBatch`. */
  async batch(step: number): Promise<Batch> {
    const info = this.info(step);
    const x = this.options.latents ? this.options.latents.read(info.items) : await this.dataset.pixels(info.items);
    if (!this.options.encodeCaptions) return { ...info, space: this.space, x };
    try {
      const text = await this.options.encodeCaptions(info.captions);
      return { ...info, space: this.space, x, text };
    } catch (e) {
      x.dispose();
      throw e;
    }
  }
}
