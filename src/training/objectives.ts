/**
 * Training objectives: what one micro-batch's loss is. The flow objective wires SANA's rectified-flow
 * recipe (`flow.ts`) to a velocity model, with caption dropout to the empty-prompt embedding (SANA's
 * `class_dropout_prob` for classifier-free guidance); the reconstruction objective trains an
 * autoencoder. Every random draw comes from `rngFor(seed, stream, microStep)`, so the loss of micro-step
 * i is a pure function of the weights, the batch and i.
 */
import { tf, Scalar, Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../backend';
import { rngFor } from '../nn/random';
import { TimestepSampling, flowMatchingLoss, noisyInput, sampleTrainingSigmas, velocityTarget } from './flow';
import type { BatchBase, Objective } from './trainer';

/** A latent (or pixel) batch with its caption embeddings, NHWC. */
export interface FlowBatch extends BatchBase {
  /** Clean latents [B, H, W, C], already multiplied by the autoencoder's scaling factor. */
  latents: Tensor4D;
  /** Text-encoder states [B, L, D]. */
  captionEmbeds: Tensor3D;
  /** [B, L]: 1 for tokens, 0 for padding. */
  captionMask: Tensor2D;
}

/** The empty prompt's embedding, used for dropped captions. */
export interface NullCaption {
  /** [L, D] */
  embeds: Tensor2D;
  /** [L] */
  mask: Tensor1D;
}

/** What the flow objective needs from a denoiser (the signature of `SanaTransformer2DModel.forward`). */
export type VelocityModel = (inputs: {
  hiddenStates: Tensor4D;
  encoderHiddenStates: Tensor3D;
  encoderAttentionMask: Tensor2D;
  timestep: Tensor1D;
}) => Tensor4D;

export interface FlowObjectiveOptions {
  seed: number;
  sampling: TimestepSampling;
  /** Probability of replacing a sample's caption by the null caption. */
  captionDropout: number;
  nullCaption: NullCaption | null;
}

/** Which samples of micro-step `index` get the null caption (stream `caption_dropout`). */
export function captionDropoutFlags(seed: number, index: number, batch: number, p: number): boolean[] {
  const rng = rngFor(seed, 'caption_dropout', index);
  return Array.from({ length: batch }, () => rng.uniform() < p);
}

/**
 * Replaces the captions of flagged samples by the null caption.
 * @param embeds [B, L, D] @param mask [B, L] @param drop one flag per sample
 */
export function dropCaptions(embeds: Tensor3D, mask: Tensor2D, nullCaption: NullCaption, drop: boolean[]): { embeds: Tensor3D; mask: Tensor2D } {
  const [B, L, D] = embeds.shape;
  const [nl, nd] = nullCaption.embeds.shape;
  if (nl !== L || nd !== D) throw new Error(`caption dropout: null caption embedding is [${nl}, ${nd}], batch captions are [${L}, ${D}] per sample (encode both with the same max_length)`);
  return tf.tidy(() => {
    const keep = tf.tensor1d(drop.map((d) => (d ? 0 : 1)), 'float32');
    const keep3 = keep.reshape([B, 1, 1]);
    const outEmbeds = embeds.mul(keep3).add(nullCaption.embeds.expandDims(0).mul(tf.sub(1, keep3))) as Tensor3D;
    const keep2 = keep.reshape([B, 1]);
    const m = mask.toFloat().mul(keep2).add(nullCaption.mask.toFloat().expandDims(0).mul(tf.sub(1, keep2)));
    return { embeds: outEmbeds, mask: (mask.dtype === 'float32' ? m : m.cast(mask.dtype)) as Tensor2D };
  });
}

/** Standard-normal noise shaped like `x` from stream `noise` of micro-step `index`. */
export function flowNoise(seed: number, index: number, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rngFor(seed, 'noise', index).normalArray(n), shape, 'float32');
}

/** The rectified-flow loss of one micro-batch (see `flow.ts` for the formulas). */
export function flowObjective(model: VelocityModel, opts: FlowObjectiveOptions): Objective<FlowBatch> {
  if (opts.captionDropout > 0 && !opts.nullCaption) throw new Error('caption dropout needs the null (empty-prompt) caption embedding');
  return (batch, index) =>
    tf.tidy(() => {
      const x0 = batch.latents;
      const B = x0.shape[0];
      if (batch.ids.length !== B) throw new Error(`batch has ${batch.ids.length} image ids for ${B} latents`);
      // 1. Noise level and noise for each sample (independent streams, both addressed by the micro-step).
      const { sigmas, timesteps } = sampleTrainingSigmas(rngFor(opts.seed, 'timesteps', index), B, opts.sampling);
      const noise = flowNoise(opts.seed, index, x0.shape);
      // 2. Interpolate towards noise; the target velocity points from data to noise.
      const xt = noisyInput(x0, noise, sigmas) as Tensor4D; // [B, H, W, C]
      const target = velocityTarget(x0, noise); // [B, H, W, C]
      // 3. Caption dropout to the null caption, for classifier-free guidance at sampling time.
      let text = { embeds: batch.captionEmbeds, mask: batch.captionMask };
      if (opts.captionDropout > 0) {
        const drop = captionDropoutFlags(opts.seed, index, B, opts.captionDropout);
        if (drop.some(Boolean)) text = dropCaptions(batch.captionEmbeds, batch.captionMask, opts.nullCaption!, drop);
      }
      // 4. Predict the velocity at timestep sigma * num_train_timesteps and regress.
      const prediction = model({ hiddenStates: xt, encoderHiddenStates: text.embeds, encoderAttentionMask: text.mask, timestep: tf.tensor1d(timesteps, 'float32') });
      return flowMatchingLoss(prediction, target);
    });
}

/** A pixel batch for autoencoder training, NHWC in [-1, 1]. */
export interface PixelBatch extends BatchBase {
  pixels: Tensor4D;
}

/** What the reconstruction objective needs from an autoencoder (AutoencoderDC's NHWC API). */
export interface Autoencoder {
  encode(images: Tensor4D): Tensor4D;
  decode(latents: Tensor4D): Tensor4D;
}

/** Reconstruction loss (mean squared or mean absolute error) of decode(encode(x)) against x. */
export function reconstructionObjective(ae: Autoencoder, loss: 'mse' | 'l1'): Objective<PixelBatch> {
  return (batch) =>
    tf.tidy(() => {
      const recon = ae.decode(ae.encode(batch.pixels));
      const diff = recon.sub(batch.pixels);
      return (loss === 'mse' ? diff.square().mean() : diff.abs().mean()) as Scalar;
    });
}
