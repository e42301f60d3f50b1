/**
 * Validation images of a training run, written as one PNG grid per validation step to
 * `<run>/samples/step-NNNNNNNN.png`:
 * - flow task: every validation prompt (one row each) sampled `images_per_prompt` times from fixed
 *   seeds with the text-to-image pipeline, so grids of successive steps are comparable;
 * - autoencoder task: a fixed set of training images (top row) above their reconstructions.
 */
import * as fs from 'fs';
import * as path from 'path';
import { tf, Tensor4D } from '../backend';
import type { TrainConfig } from '../config/train';
import { AutoencoderDC } from '../models/dcae';
import { ImageDataset } from '../data';
import { generateImages, SanaPipelineComponents } from './textToImage';
import { RgbImage, denormalizeImages, toRgbImages, writePng } from './imageOutput';

/** Pixels between grid cells (black). */
const GRID_GAP = 2;

/** Tiles equally sized images into `rows` x `cols` (row-major), with a gap between cells. */
export function imageGrid(images: RgbImage[], cols: number): RgbImage {
  if (images.length === 0) throw new Error('image grid: no images');
  const { width: w, height: h, channels: c } = images[0];
  for (const im of images) {
    if (im.width !== w || im.height !== h || im.channels !== c) throw new Error(`image grid: images differ in size (${im.width}x${im.height}x${im.channels} vs ${w}x${h}x${c})`);
  }
  const rows = Math.ceil(images.length / cols);
  const W = cols * w + (cols - 1) * GRID_GAP;
  const H = rows * h + (rows - 1) * GRID_GAP;
  const pixels = new Uint8Array(W * H * c);
  images.forEach((im, i) => {
    const x0 = (i % cols) * (w + GRID_GAP);
    const y0 = Math.floor(i / cols) * (h + GRID_GAP);
    for (let y = 0; y < h; y++) pixels.set(im.pixels.subarray(y * w * c, (y + 1) * w * c), ((y0 + y) * W + x0) * c);
  });
  return { width: W, height: H, channels: c as 1 | 3, pixels };
}

/** The file a validation grid of `step` is written to. */
export function validationFile(samplesDir: string, step: number): string {
  fs.mkdirSync(samplesDir, { recursive: true });
  return path.join(samplesDir, `step-${String(step).padStart(8, '0')}.png`);
}

/** Flow task: the validation prompts sampled from fixed seeds; rows = prompts. */
export function flowValidation(c: TrainConfig, components: SanaPipelineComponents, samplesDir: string): (step: number) => Promise<string> {
  const v = c.validation;
  return async (step) => {
    const { images } = await generateImages(components, {
      prompts: v.prompts,
      negativePrompt: v.negative_prompt,
      guidanceScale: v.guidance_scale,
      sampler: v.sampler,
      steps: v.steps,
      seed: v.seed,
      numImagesPerPrompt: v.images_per_prompt,
      height: c.data.resolution,
      width: c.data.resolution,
      resolutionBinning: false,
      batchSize: v.prompts.length * v.images_per_prompt,
    });
    const file = validationFile(samplesDir, step);
    await writePng(file, imageGrid(images, v.images_per_prompt));
    return file;
  };
}

/** Autoencoder task: `validation.images` training images spread over the data set, and their reconstructions. */
export function autoencoderValidation(c: TrainConfig, ae: AutoencoderDC, dataset: ImageDataset, samplesDir: string): (step: number) => Promise<string> {
  const n = Math.min(c.validation.images, dataset.size);
  // Evenly spaced items of the first item's size (a batch holds one size).
  const first = dataset.items[0].bucket;
  const sameSize = dataset.items.map((it, i) => ({ it, i })).filter(({ it }) => it.bucket.height === first.height && it.bucket.width === first.width);
  const picks = Array.from({ length: Math.min(n, sameSize.length) }, (_, k) => sameSize[Math.floor((k * sameSize.length) / n)].i);
  return async (step) => {
    const x = await dataset.pixels(picks); // [n, H, W, C] in [-1, 1]
    let both: Tensor4D;
    try {
      both = tf.tidy(() => denormalizeImages(tf.concat([x, ae.decode(ae.encode(x))], 0) as Tensor4D));
    } finally {
      x.dispose();
    }
    const images = toRgbImages(both);
    both.dispose();
    const file = validationFile(samplesDir, step);
    await writePng(file, imageGrid(images, picks.length));
    return file;
  };
}
