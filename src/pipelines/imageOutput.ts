/**
 * From decoded images to pixels and PNG files.
 *
 * Mirrors diffusers' `PixArtImageProcessor.resize_and_crop_tensor` (image_processor.py: scale to cover
 * with bilinear interpolation, align_corners=False, then center-crop) and `VaeImageProcessor.postprocess`
 * / `numpy_to_pil` ((x / 2 + 0.5).clamp(0, 1), then (x * 255).round() with NumPy's round-half-to-even).
 * All tensors are NHWC.
 */
import sharp from 'sharp';
import { tf, Tensor4D } from '../backend';
import { writeFileAtomic } from '../io/atomic';

/**
 * Resizes images [B, H, W, C] so they cover height x width (the larger scale of the two sides, sizes
 * truncated to integers as the reference does), then crops the center. A no-op at the same size.
 */
export function resizeAndCrop(images: Tensor4D, height: number, width: number): Tensor4D {
  return tf.tidy((): Tensor4D => {
    const [, h, w] = images.shape;
    if (h === height && w === width) return images.clone();
    const ratio = Math.max(height / h, width / w);
    const rh = Math.trunc(h * ratio);
    const rw = Math.trunc(w * ratio);
    // halfPixelCenters: the sampling grid of PyTorch's bilinear interpolation with align_corners=False.
    const resized = tf.image.resizeBilinear(images, [rh, rw], false, true);
    const top = Math.floor((rh - height) / 2);
    const left = Math.floor((rw - width) / 2);
    return resized.slice([0, top, left, 0], [-1, Math.min(height, rh - top), Math.min(width, rw - left), -1]) as Tensor4D;
  });
}

/** Decoder output (roughly [-1, 1]) -> [0, 1]: clamp(x / 2 + 0.5, 0, 1). */
export function denormalizeImages(decoded: Tensor4D): Tensor4D {
  return tf.tidy(() => decoded.div(2).add(0.5).clipByValue(0, 1) as Tensor4D);
}

/** Round half to even, as NumPy's `round`. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** [0, 1] floats (any layout) -> uint8 levels round(x * 255) with x * 255 in float32, as the reference. */
export function toUint8(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.min(255, Math.max(0, roundHalfEven(Math.fround(values[i] * 255))));
  return out;
}

/** An 8-bit RGB (or gray) image in row-major HWC order. */
export interface RgbImage {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
}

/** Splits a [B, H, W, C] batch in [0, 1] into host uint8 images. */
export function toRgbImages(images: Tensor4D): RgbImage[] {
  const [b, h, w, c] = images.shape;
  if (c !== 3 && c !== 1) throw new Error(`images must have 1 or 3 channels, got shape [${images.shape}]`);
  const all = toUint8(images.dataSync());
  const per = h * w * c;
  return Array.from({ length: b }, (_, i) => ({ width: w, height: h, channels: c as 1 | 3, pixels: all.slice(i * per, (i + 1) * per) }));
}

/** PNG bytes of an image (deterministic: same pixels, same bytes). */
export async function encodePng(image: RgbImage): Promise<Buffer> {
  return sharp(Buffer.from(image.pixels.buffer, image.pixels.byteOffset, image.pixels.byteLength), {
    raw: { width: image.width, height: image.height, channels: image.channels },
  })
    .png()
    .toBuffer();
}

/** Writes an image as PNG, atomically (a reader never sees half a file). */
export async function writePng(file: string, image: RgbImage): Promise<void> {
  writeFileAtomic(file, await encodePng(image));
}
