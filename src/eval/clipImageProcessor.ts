/**
 * CLIP image preprocessing as transformers' PIL-backed `CLIPImageProcessor` (4.x
 * `image_processing_clip.py`; `CLIPImageProcessorPil` in 5.x) and OpenAI's original CLIP transform:
 *
 * 1. resize so the shortest edge is `size` (other edge = floor(size * long / short)) with Pillow's
 *    bicubic on the uint8 image (rounded back to uint8);
 * 2. center crop `crop` x `crop` (top = (h - crop) // 2, left = (w - crop) // 2);
 * 3. x / 255, then (x - mean) / std per channel.
 *
 * Output is NHWC float32 for the CLIP vision tower.
 */
import { tf, Tensor4D } from '../backend';
import { ImageU8, cropU8, resizeU8 } from './imageResize';

/** OpenAI CLIP's normalisation constants (`OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD` in transformers). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface ClipPreprocessOptions {
  /** Shortest edge after resizing (default 224). */
  size?: number;
  /** Center-crop size (default 224). */
  crop?: number;
  mean?: readonly number[];
  std?: readonly number[];
}

/** Output size of a shortest-edge resize: (height, width). */
export function shortestEdgeSize(height: number, width: number, size: number): [number, number] {
  if (height <= width) return [size, Math.floor((size * width) / height)];
  return [Math.floor((size * height) / width), size];
}

/** Steps 1-2 for one RGB image: the uint8 crop (and the resized image before it, for checks). */
export function clipResizeAndCrop(img: ImageU8, opts: ClipPreprocessOptions = {}): { resized: ImageU8; cropped: ImageU8 } {
  const size = opts.size ?? 224;
  const crop = opts.crop ?? 224;
  if (img.channels !== 3) throw new Error(`CLIP preprocessing expects RGB images (3 channels), got ${img.channels}`);
  const [h, w] = shortestEdgeSize(img.height, img.width, size);
  const resized = resizeU8(img, w, h, 'bicubic');
  if (h < crop || w < crop) throw new Error(`CLIP preprocessing: resized image ${w}x${h} is smaller than the ${crop}x${crop} crop`);
  const top = Math.floor((h - crop) / 2);
  const left = Math.floor((w - crop) / 2);
  return { resized, cropped: cropU8(resized, top, left, crop, crop) };
}

/** Preprocesses a batch of RGB images into CLIP pixel values [N, crop, crop, 3]. */
export function clipPixelValues(images: ImageU8[], opts: ClipPreprocessOptions = {}): Tensor4D {
  const crop = opts.crop ?? 224;
  const mean = opts.mean ?? CLIP_MEAN;
  const std = opts.std ?? CLIP_STD;
  const plane = crop * crop * 3;
  const out = new Float32Array(images.length * plane);
  images.forEach((img, i) => {
    const { cropped } = clipResizeAndCrop(img, opts);
    for (let p = 0; p < crop * crop; p++) {
      for (let c = 0; c < 3; c++) {
        // Rescale then normalise in float64, rounded once to float32 like the reference's float32 output.
        out[i * plane + p * 3 + c] = (cropped.data[p * 3 + c] / 255 - mean[c]) / std[c];
      }
    }
  });
  return tf.tensor4d(out, [images.length, crop, crop, 3]);
}
