/**
 * Text-to-image with SANA: prompts -> Gemma-2 embeddings -> flow sampling of the DiT with
 * classifier-free guidance -> DC-AE decode -> 8-bit images.
 *
 * Mirrors diffusers' `SanaPipeline.__call__` (pipelines/sana/pipeline_sana.py): prompt and negative
 * prompt encoding (see `promptEncoding.ts`), resolution binning to the aspect-ratio table chosen by the
 * transformer's `sample_size` with the decoded image resized and cropped back to the requested size,
 * latents divided by the VAE's `scaling_factor` before decoding, and the [0, 1] / uint8 postprocessing.
 * What differs on purpose: initial noise comes from this project's seeded RNG, one stream per image
 * (seed + image number), so any image can be regenerated alone and results do not depend on the batch
 * size; images are produced in batches to bound memory; the text encoder can be released once the
 * prompts are encoded. All tensors are NHWC.
 */
import { tf, Tensor, Tensor2D, Tensor3D, Tensor4D } from '../backend';
import { AutoencoderDC, TilingOptions } from '../models/dcae';
import { SanaTransformer2DModel } from '../models/dit';
import { rngFor } from '../nn/random';
import {
  FlowSampler,
  FlowSchedule,
  FlowSchedulerConfig,
  StepEnd,
  flowDpmSolverConfigFrom,
  flowDpmSolverSampler,
  flowEulerConfigFrom,
  flowEulerSampler,
} from '../schedulers';
import { aspectRatioBinsForSampleSize, nearestAspectRatioBin } from '../data/aspectRatios';
import { DEFAULT_GUIDANCE_SCALE, GuidanceStep, guidedVelocity, usesGuidance } from './guidance';
import { denormalizeImages, resizeAndCrop, RgbImage, toRgbImages } from './imageOutput';
import { PromptEmbeddings, SanaPromptEncoder } from './promptEncoding';

/** The models of a SANA pipeline, in memory. */
export interface SanaPipelineComponents {
  transformer: SanaTransformer2DModel;
  /** The autoencoder; null samples in pixel space (the transformer's channels are the image's). */
  vae: AutoencoderDC | null;
  promptEncoder: SanaPromptEncoder;
  /** The scheduler config the pipeline was saved with (picks the default sampler and the shift). */
  scheduler: FlowSchedulerConfig;
  /** Overrides `vae.config.scaling_factor` (a training run may set its own). */
  vaeScalingFactor?: number;
}

export type SamplerName = 'dpm' | 'euler';

/** SANA's default step counts: 20 for Flow-DPM-Solver, 28 for Flow-Euler. */
export const DEFAULT_STEPS: Record<SamplerName, number> = { dpm: 20, euler: 28 };

export interface TextToImageOptions {
  prompts: string[];
  /** One negative prompt for all prompts, or one per prompt. Default ''. */
  negativePrompt?: string | string[];
  /** Classifier-free guidance scale (applied when > 1). Default 4.5. */
  guidanceScale?: number;
  /** Default: the scheduler config's sampler. */
  sampler?: SamplerName;
  /** Default 20 (dpm) or 28 (euler). */
  steps?: number;
  /** Image i (0-based, prompt-major) starts from noise of seed + i. Default 0. */
  seed?: number;
  /** Output size in pixels; default sample_size * compression ratio (1024 for SANA 1024px). */
  height?: number;
  width?: number;
  numImagesPerPrompt?: number;
  /** Images denoised together. Default 1. */
  batchSize?: number;
  /** Sample at the nearest SANA aspect-ratio bin and resize back (default true, as the reference). */
  resolutionBinning?: boolean;
  /** DC-AE decoding: 'auto' (default) tiles images larger than 1024 px on a side with the reference's default tiles. */
  vaeTiling?: 'auto' | boolean | TilingOptions;
  /** Free the text encoder once prompts are encoded (when the encoder was given as a loader). */
  releaseTextEncoder?: boolean;
  /** Initial latents [images, h, w, C] (NHWC), replacing the seeded noise (for parity checks). */
  latents?: Tensor4D;
  onProgress?: (e: TextToImageEvent) => void;
  /** Hooks into intermediate tensors (borrowed: clone to keep). */
  inspect?: TextToImageInspection;
}

export interface TextToImageInspection {
  /** The conditional / negative embeddings as encoded, before batching. */
  text?: (e: { cond: PromptEmbeddings; uncond: PromptEmbeddings | null }) => void;
  /** Each transformer evaluation, its halves and the guided velocity. */
  guidance?: (e: GuidanceStep & { batch: number }) => void;
  /** Each sampler step. */
  step?: (e: StepEnd & { batch: number }) => void;
  /** The decoder input (latents / scaling factor), its raw output, and the final [0, 1] images. */
  decode?: (e: { batch: number; decoderInput: Tensor4D; decoded: Tensor4D; images: Tensor4D }) => void;
}

/** Progress, as typed events (only the command line prints them). */
export type TextToImageEvent =
  | { type: 'encoded'; prompts: number; seconds: number }
  | { type: 'step'; batch: number; batches: number; images: number[]; step: number; steps: number; itPerSec: number; seconds: number }
  | { type: 'decoded'; batch: number; batches: number; tiled: boolean; seconds: number }
  | { type: 'image'; image: GeneratedImage };

export interface GeneratedImage extends RgbImage {
  prompt: string;
  promptIndex: number;
  /** Position among all images of the call (prompt-major). */
  imageIndex: number;
  /** The seed of this image's initial noise (null when latents were given). */
  seed: number | null;
}

/** Every setting that decided the result (what a sidecar records to reproduce it). */
export interface TextToImageSettings {
  prompts: string[];
  negative_prompts: string[] | null;
  guidance_scale: number;
  sampler: SamplerName;
  steps: number;
  timesteps: number[];
  sigmas: number[];
  seed: number | null;
  height: number;
  width: number;
  /** The size sampled at (differs from height/width with resolution binning). */
  sample_height: number;
  sample_width: number;
  resolution_binning: boolean;
  num_images_per_prompt: number;
  batch_size: number;
  vae_tiling: TilingOptions | false;
  vae_scaling_factor: number | null;
  complex_human_instruction: string[] | null;
  max_sequence_length: number;
  scheduler: FlowSchedulerConfig;
}

export interface TextToImageResult {
  images: GeneratedImage[];
  settings: TextToImageSettings;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`text-to-image: ${name} must be an integer >= 1, got ${v}`);
  return v;
}

/** The sampler for a name, derived from the pipeline's scheduler config (same shift). */
export function samplerFor(scheduler: FlowSchedulerConfig, name?: SamplerName): { name: SamplerName; sampler: FlowSampler; config: FlowSchedulerConfig } {
  const own: SamplerName = scheduler._class_name === 'DPMSolverMultistepScheduler' ? 'dpm' : 'euler';
  const want = name ?? own;
  if (want === 'dpm') {
    const config = scheduler._class_name === 'DPMSolverMultistepScheduler' ? scheduler : flowDpmSolverConfigFrom(scheduler);
    return { name: want, sampler: flowDpmSolverSampler(config), config };
  }
  const config = scheduler._class_name === 'FlowMatchEulerDiscreteScheduler' ? scheduler : flowEulerConfigFrom(scheduler);
  return { name: want, sampler: flowEulerSampler(config), config };
}

/** Requested and sampled sizes. */
export function resolveImageSize(
  components: Pick<SanaPipelineComponents, 'transformer' | 'vae'>,
  opts: { height?: number; width?: number; resolutionBinning?: boolean },
): { height: number; width: number; sampleHeight: number; sampleWidth: number; binning: boolean } {
  const ratio = components.vae ? components.vae.spatialCompressionRatio : 1;
  const { sample_size: sampleSize, patch_size: patch } = components.transformer.config;
  const height = positiveInt('height', opts.height ?? sampleSize * ratio);
  const width = positiveInt('width', opts.width ?? sampleSize * ratio);
  // Bins are defined for SANA's f32 autoencoder at its latent sizes (16, 32, 64, 128). By default a model
  // without such bins (pixel space, another compression, a small sample size) samples as asked; asking
  // for binning explicitly on one is an error.
  const hasBins = components.vae !== null && ratio === 32 && [16, 32, 64, 128].includes(sampleSize);
  const binning = opts.resolutionBinning ?? hasBins;
  let sampleHeight = height;
  let sampleWidth = width;
  if (binning) {
    let bins;
    try {
      if (ratio !== 32) throw new Error(`no aspect-ratio bins for an autoencoder with compression ${ratio} (SANA's bins assume 32)`);
      bins = aspectRatioBinsForSampleSize(sampleSize);
    } catch (e) {
      throw new Error(`${(e as Error).message}; disable resolution binning to sample this transformer`);
    }
    const bin = nearestAspectRatioBin(height, width, bins);
    sampleHeight = bin.height;
    sampleWidth = bin.width;
  }
  const unit = ratio * patch;
  if (sampleHeight % unit || sampleWidth % unit) {
    throw new Error(`text-to-image: the sampled size ${sampleHeight}x${sampleWidth} must be a multiple of ${unit} (autoencoder ratio ${ratio} x patch size ${patch}); choose another size or enable resolution binning`);
  }
  return { height, width, sampleHeight, sampleWidth, binning };
}

function resolveTiling(choice: TextToImageOptions['vaeTiling'], height: number, width: number): TilingOptions | false {
  if (choice === undefined || choice === 'auto') return height > 1024 || width > 1024 ? {} : false;
  if (choice === true) return {};
  return choice;
}

/** Seeded standard-normal latents for one image, NHWC order [h, w, C]. */
export function initialNoise(seed: number, h: number, w: number, c: number): Float32Array {
  return rngFor(seed, 'latents').normalArray(h * w * c);
}

/**
 * Generates `numImagesPerPrompt` images for each prompt. Returns host images (uint8 RGB) and the
 * settings used. No tensor outlives the call; `opts.latents` is not disposed.
 */
export async function generateImages(components: SanaPipelineComponents, opts: TextToImageOptions): Promise<TextToImageResult> {
  const { transformer, vae, promptEncoder } = components;
  // 1. Options.
  if (!Array.isArray(opts.prompts) || opts.prompts.length === 0) throw new Error('text-to-image: at least one prompt is needed');
  opts.prompts.forEach((p, i) => {
    if (typeof p !== 'string') throw new Error(`text-to-image: prompt ${i} is not a string`);
  });
  const guidanceScale = opts.guidanceScale ?? DEFAULT_GUIDANCE_SCALE;
  if (!Number.isFinite(guidanceScale) || guidanceScale < 0) throw new Error(`text-to-image: guidance scale must be a number >= 0, got ${guidanceScale}`);
  const { name: samplerName, sampler, config: schedulerConfig } = samplerFor(components.scheduler, opts.sampler);
  const steps = positiveInt('steps', opts.steps ?? DEFAULT_STEPS[samplerName]);
  const perPrompt = positiveInt('numImagesPerPrompt', opts.numImagesPerPrompt ?? 1);
  const batchSize = positiveInt('batchSize', opts.batchSize ?? 1);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`text-to-image: seed must be an integer >= 0, got ${seed}`);
  const size = resolveImageSize(components, opts);
  const tiling = vae ? resolveTiling(opts.vaeTiling, size.sampleHeight, size.sampleWidth) : false;
  const ratio = vae ? vae.spatialCompressionRatio : 1;
  const [h, w, c] = [size.sampleHeight / ratio, size.sampleWidth / ratio, transformer.config.in_channels];
  const total = opts.prompts.length * perPrompt;
  if (vae && vae.latentChannels !== c) throw new Error(`text-to-image: the transformer has ${c} input channels but the autoencoder's latent has ${vae.latentChannels}`);
  if (opts.latents) {
    const want = [total, h, w, c];
    if (opts.latents.shape.some((d, i) => d !== want[i]) || opts.latents.rank !== 4) throw new Error(`text-to-image: latents must be NHWC [${want}], got [${opts.latents.shape}]`);
  }
  const cfg = usesGuidance(guidanceScale);
  const negatives = cfg ? negativeList(opts.negativePrompt, opts.prompts.length) : null;
  const schedule: FlowSchedule = sampler.schedule(steps);
  const scaling = components.vaeScalingFactor ?? vae?.config.scaling_factor ?? null;

  // 2. Text.
  const t0 = performance.now();
  const cond = promptEncoder.encode(opts.prompts); // [P, L, D]
  let uncond: PromptEmbeddings | null = null;
  const images: GeneratedImage[] = [];
  try {
    uncond = negatives ? promptEncoder.encodeNegative(negatives) : null; // [P, L, D]
    opts.inspect?.text?.({ cond, uncond });
    if (opts.releaseTextEncoder && promptEncoder.isLoaded) promptEncoder.release();
    opts.onProgress?.({ type: 'encoded', prompts: opts.prompts.length, seconds: (performance.now() - t0) / 1000 });

    // 3. Batches of images, prompt-major.
    const jobs = Array.from({ length: total }, (_, i) => ({ imageIndex: i, promptIndex: Math.floor(i / perPrompt) }));
    const batches = Math.ceil(total / batchSize);
    for (let b = 0; b < batches; b++) {
      const batch = jobs.slice(b * batchSize, (b + 1) * batchSize);
      const rows = tf.tensor1d(batch.map((j) => j.promptIndex), 'int32');
      const x0 = opts.latents
        ? (opts.latents.slice([batch[0].imageIndex, 0, 0, 0], [batch.length, -1, -1, -1]) as Tensor4D)
        : tf.tensor4d(concatNoise(batch.map((j) => initialNoise(seed + j.imageIndex, h, w, c))), [batch.length, h, w, c], 'float32');
      const text = {
        cond: { embeds: tf.gather(cond.promptEmbeds, rows) as Tensor3D, mask: tf.gather(cond.promptAttentionMask, rows) as Tensor2D },
        uncond: uncond ? { embeds: tf.gather(uncond.promptEmbeds, rows) as Tensor3D, mask: tf.gather(uncond.promptAttentionMask, rows) as Tensor2D } : null,
      };
      const velocity = guidedVelocity(transformer, text.cond, text.uncond, {
        guidanceScale,
        onStep: opts.inspect?.guidance ? (s) => opts.inspect!.guidance!({ ...s, batch: b }) : undefined,
      });
      let latents: Tensor | null = null;
      try {
        // 3a. Sampling.
        const started = performance.now();
        latents = sampler.sample(velocity, x0, schedule, {
          onStep: (e) => {
            opts.inspect?.step?.({ ...e, batch: b });
            const seconds = (performance.now() - started) / 1000;
            opts.onProgress?.({ type: 'step', batch: b, batches, images: batch.map((j) => j.imageIndex), step: e.index + 1, steps: e.total, itPerSec: (e.index + 1) / Math.max(seconds, 1e-9), seconds });
          },
        });
        // 3b. Decoding and postprocessing.
        const decodeStart = performance.now();
        const rgb = decodeToImages(vae, latents as Tensor4D, scaling, tiling, size, opts.inspect?.decode ? (e) => opts.inspect!.decode!({ ...e, batch: b }) : undefined);
        opts.onProgress?.({ type: 'decoded', batch: b, batches, tiled: tiling !== false, seconds: (performance.now() - decodeStart) / 1000 });
        rgb.forEach((img, k) => {
          const job = batch[k];
          const image: GeneratedImage = { ...img, prompt: opts.prompts[job.promptIndex], promptIndex: job.promptIndex, imageIndex: job.imageIndex, seed: opts.latents ? null : seed + job.imageIndex };
          images.push(image);
          opts.onProgress?.({ type: 'image', image });
        });
      } finally {
        velocity.dispose();
        tf.dispose([rows, x0, text.cond.embeds, text.cond.mask, ...(text.uncond ? [text.uncond.embeds, text.uncond.mask] : [])]);
        latents?.dispose();
      }
    }
  } finally {
    tf.dispose([cond.promptEmbeds, cond.promptAttentionMask, ...(uncond ? [uncond.promptEmbeds, uncond.promptAttentionMask] : [])]);
  }

  const settings: TextToImageSettings = {
    prompts: [...opts.prompts],
    negative_prompts: negatives,
    guidance_scale: guidanceScale,
    sampler: samplerName,
    steps,
    timesteps: schedule.timesteps,
    sigmas: schedule.sigmas,
    seed: opts.latents ? null : seed,
    height: size.height,
    width: size.width,
    sample_height: size.sampleHeight,
    sample_width: size.sampleWidth,
    resolution_binning: size.binning,
    num_images_per_prompt: perPrompt,
    batch_size: batchSize,
    vae_tiling: tiling,
    vae_scaling_factor: scaling,
    complex_human_instruction: promptEncoder.settings.chi,
    max_sequence_length: promptEncoder.settings.maxSequenceLength,
    scheduler: schedulerConfig,
  };
  return { images, settings };
}

function negativeList(negative: string | string[] | undefined, n: number): string[] {
  if (negative === undefined || typeof negative === 'string') return Array(n).fill(negative ?? '');
  if (negative.length !== n) throw new Error(`text-to-image: ${negative.length} negative prompts for ${n} prompts; give one, or one per prompt`);
  return [...negative];
}

function concatNoise(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Latents -> host images at the requested size: unscale, decode (tiled or not), resize back, [0, 1], uint8. */
function decodeToImages(
  vae: AutoencoderDC | null,
  latents: Tensor4D,
  scaling: number | null,
  tiling: TilingOptions | false,
  size: { height: number; width: number },
  inspect?: (e: { decoderInput: Tensor4D; decoded: Tensor4D; images: Tensor4D }) => void,
): RgbImage[] {
  const decoderInput = scaling !== null ? (tf.tidy(() => latents.div(tf.scalar(scaling, 'float32'))) as Tensor4D) : latents.clone();
  const decoded = vae ? (tiling === false ? vae.decode(decoderInput) : vae.decodeTiled(decoderInput, tiling)) : decoderInput.clone();
  const resized = resizeAndCrop(decoded, size.height, size.width);
  const images = denormalizeImages(resized);
  try {
    inspect?.({ decoderInput, decoded, images });
    return toRgbImages(images);
  } finally {
    tf.dispose([decoderInput, decoded, resized, images]);
  }
}
