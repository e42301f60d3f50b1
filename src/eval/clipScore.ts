/**
 * CLIP score of image-caption pairs.
 *
 * - `torchmetrics` (default; torchmetrics `functional/multimodal/clip_score.py`): per pair
 *   100 * cos(image_embed, text_embed); the score is max(mean over pairs, 0). The clamp is on the
 *   MEAN, not per pair.
 * - `sana` (NVlabs/Sana `tools/metrics/clip-score`, after the `clip-score` package): the mean of
 *   exp(logit_scale) * cos, unclamped (exp(logit_scale) = 100 for the OpenAI checkpoints).
 * - `clamped_pairs`: the mean of 100 * max(cos, 0), clamping each pair (what some papers describe).
 *
 * Captions longer than the text tower's 77 positions are cut to their first 77 tokens, as torchmetrics
 * does (see models/clip/tokenizer.ts).
 */
import { tf, Tensor2D } from '../backend';
import { CLIPModel } from '../models/clip/modeling';
import { CLIPTokenizer } from '../models/clip/tokenizer';
import { ImageU8 } from './imageResize';
import { ClipPreprocessOptions, clipPixelValues } from './clipImageProcessor';

export type ClipScoreVariant = 'torchmetrics' | 'sana' | 'clamped_pairs';
export const CLIP_SCORE_VARIANTS: readonly ClipScoreVariant[] = ['torchmetrics', 'sana', 'clamped_pairs'];

/** Cosine similarity of row i of `a` with row i of `b` (both [N, D]), in float64. */
export function pairCosines(a: Float32Array, b: Float32Array, n: number, d: number): Float64Array {
  if (a.length !== n * d || b.length !== n * d) throw new Error(`pairCosines: expected two [${n}, ${d}] arrays, got ${a.length} and ${b.length} values`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = 0; j < d; j++) {
      const x = a[i * d + j];
      const y = b[i * d + j];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    out[i] = dot / (Math.sqrt(na) * Math.sqrt(nb));
  }
  return out;
}

/** The score of a set of pair cosines under `variant` (`logitScale` = exp(logit_scale), for `sana`). */
export function clipScoreFromCosines(cosines: ArrayLike<number>, variant: ClipScoreVariant = 'torchmetrics', logitScale = 100): number {
  const n = cosines.length;
  if (n === 0) throw new Error('CLIP score of an empty set');
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const c = cosines[i];
    sum += variant === 'sana' ? logitScale * c : variant === 'clamped_pairs' ? 100 * Math.max(c, 0) : 100 * c;
  }
  const mean = sum / n;
  return variant === 'torchmetrics' ? Math.max(mean, 0) : mean;
}

/** Image features, caption features and cosines of a batch of pairs. */
export interface ClipPairs {
  imageEmbeds: Float32Array;
  textEmbeds: Float32Array;
  cosines: Float64Array;
  dim: number;
}

/**
 * Scores image-caption pairs with a CLIP model: preprocessing, both towers, cosines. Batches are
 * the caller's (see evaluate.ts); nothing is kept between calls.
 */
export class ClipScorer {
  readonly preprocess: ClipPreprocessOptions;

  /**
   * `preprocess` defaults to the vision tower's input size for both the shortest-edge resize and the
   * crop (224 for ViT-L/14, 336 for its -336 variant), as the checkpoints' processor configs set them.
   */
  constructor(
    readonly model: CLIPModel,
    readonly tokenizer: CLIPTokenizer,
    preprocess: ClipPreprocessOptions = {},
  ) {
    const s = model.config.vision_config.image_size;
    this.preprocess = { size: s, crop: s, ...preprocess };
  }

  /** exp(logit_scale) of the model (100 for the OpenAI checkpoints). */
  logitScale(): number {
    return Math.exp(this.model.logit_scale.value.dataSync()[0]);
  }

  /** Embeddings and cosines of `images[i]` with `captions[i]`. */
  pairs(images: ImageU8[], captions: string[]): ClipPairs {
    if (images.length !== captions.length) throw new Error(`CLIP score: ${images.length} images but ${captions.length} captions`);
    const enc = this.tokenizer.encode(captions, { maxLength: this.model.config.text_config.max_position_embeddings });
    const [img, txt] = tf.tidy(() => {
      const pixels = clipPixelValues(images, this.preprocess);
      const ids = tf.tensor2d(enc.ids, [captions.length, enc.length], 'int32');
      const mask = tf.tensor2d(enc.attentionMask, [captions.length, enc.length], 'int32');
      return [this.model.getImageFeatures(pixels), this.model.getTextFeatures(ids, mask)] as [Tensor2D, Tensor2D];
    });
    const imageEmbeds = img.dataSync() as Float32Array;
    const textEmbeds = txt.dataSync() as Float32Array;
    const dim = img.shape[1];
    img.dispose();
    txt.dispose();
    return { imageEmbeds, textEmbeds, dim, cosines: pairCosines(imageEmbeds, textEmbeds, images.length, dim) };
  }
}
