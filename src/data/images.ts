/**
 * Decoding images with sharp and fitting them to a bucket.
 *
 * Mirrors the pixel path of NVlabs/Sana `diffusion/data/datasets/sana_data_multi_scale.py`: convert to RGB
 * (alpha dropped, grey replicated), resize to cover the bucket with a bicubic kernel, center crop, then
 * `ToTensor` + `Normalize([0.5], [0.5])`, i.e. x / 255 * 2 - 1. EXIF orientation is not applied (PIL's
 * `Image.open` does not apply it either), so an image's size here is the size SANA would see.
 *
 * A file is fully decoded when probed, so truncated or corrupt files are found once, up front, and can be
 * skipped by name instead of failing a training step later.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import sharp from 'sharp';
import { SafetensorsFile } from '../io/safetensors';
import { centerCropOffset, coverResizeSize } from './buckets';
import type { ImageRef } from './manifest';

/** The tensor name inside an image pack. */
export const PACK_TENSOR = 'images';

export class ImageDecodeError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ImageDecodeError';
  }
}

export interface ImageProbe {
  height: number;
  width: number;
  /** sha1 of the encoded bytes (files) or of the pixels (packs): latent caches use it to notice edits. */
  contentHash: string;
}

export interface ImagePack {
  data: Uint8Array; // [N, H, W, C]
  count: number;
  height: number;
  width: number;
  channels: number;
}

/** Image packs (uint8 [N, H, W, 1 or 3], see data/README.md), each read once and kept: they hold small images by design. */
export class ImagePacks {
  private readonly packs = new Map<string, ImagePack>();

  get(file: string): ImagePack {
    const cached = this.packs.get(file);
    if (cached) return cached;
    const f = SafetensorsFile.open(file);
    try {
      if (!f.has(PACK_TENSOR)) throw new ImageDecodeError(file, `image pack has no "${PACK_TENSOR}" tensor (found: ${f.keys().join(', ') || 'none'})`);
      const info = f.info(PACK_TENSOR);
      if (info.dtype !== 'U8' || info.shape.length !== 4 || ![1, 3].includes(info.shape[3])) {
        throw new ImageDecodeError(file, `"${PACK_TENSOR}" must be uint8 [N, H, W, 1 or 3], got ${info.dtype} [${info.shape.join(', ')}]`);
      }
      const [count, height, width, channels] = info.shape;
      const p: ImagePack = { data: f.read(PACK_TENSOR).data as Uint8Array, count, height, width, channels };
      this.packs.set(file, p);
      return p;
    } finally {
      f.close();
    }
  }

  /** The pixels of one packed image, [H, W, C] as a view into the pack. */
  slice(ref: Extract<ImageRef, { kind: 'pack' }>): { pack: ImagePack; pixels: Uint8Array } {
    const p = this.get(ref.path);
    if (ref.index >= p.count) throw new ImageDecodeError(describeImageRef(ref), `index ${ref.index} is past the end of the pack (${p.count} images)`);
    const size = p.height * p.width * p.channels;
    return { pack: p, pixels: p.data.subarray(ref.index * size, (ref.index + 1) * size) };
  }
}

/** Where an image comes from, for messages: the file, or `pack.safetensors[17]`. */
export function describeImageRef(ref: ImageRef): string {
  return ref.kind === 'file' ? ref.path : `${ref.path}[${ref.index}]`;
}

/** RGB [h, w, 3] -> luma [h, w, 1] with PIL's `convert('L')` weights (ITU-R 601-2). */
function rgbToGray(rgb: Uint8Array): Uint8Array {
  const n = rgb.length / 3;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round((rgb[3 * i] * 299 + rgb[3 * i + 1] * 587 + rgb[3 * i + 2] * 114) / 1000);
  return out;
}

/** x / 255 * 2 - 1 as float32, the range the autoencoder and the pixel-space models take. */
export function toSignedUnit(u8: Uint8Array, out = new Float32Array(u8.length), offset = 0): Float32Array {
  for (let i = 0; i < u8.length; i++) out[offset + i] = (u8[i] / 255 - 0.5) / 0.5;
  return out;
}

/**
 * Reads images by reference. Packs are loaded once and kept in memory (they hold small images by design).
 */
export class ImageReader {
  private readonly packs = new ImagePacks();

  private packSlice(ref: Extract<ImageRef, { kind: 'pack' }>): { pack: ImagePack; pixels: Uint8Array } {
    return this.packs.slice(ref);
  }

  private async readFile(file: string): Promise<Buffer> {
    try {
      return await fs.promises.readFile(file);
    } catch (e) {
      throw new ImageDecodeError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }

  /** Decodes the whole image (so truncation is caught) and returns its size and content hash. */
  async probe(ref: ImageRef): Promise<ImageProbe> {
    if (ref.kind === 'pack') {
      const { pack, pixels } = this.packSlice(ref);
      return { height: pack.height, width: pack.width, contentHash: crypto.createHash('sha1').update(pixels).digest('hex') };
    }
    const bytes = await this.readFile(ref.path);
    try {
      const { info } = await sharp(bytes, { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true });
      return { height: info.height, width: info.width, contentHash: crypto.createHash('sha1').update(bytes).digest('hex') };
    } catch (e) {
      throw new ImageDecodeError(ref.path, `cannot decode image (${(e as Error).message})`);
    }
  }

  /**
   * The image resized to cover `height` x `width` and center-cropped to it: uint8 [height, width, channels].
   * `channels` 3 gives RGB (grey replicated); 1 gives luma.
   */
  async fitToSize(ref: ImageRef, height: number, width: number, channels: 1 | 3): Promise<Uint8Array> {
    let input: ReturnType<typeof sharp>;
    let srcH: number;
    let srcW: number;
    if (ref.kind === 'pack') {
      const { pack, pixels } = this.packSlice(ref);
      if (pack.height === height && pack.width === width && pack.channels === channels) return pixels.slice();
      srcH = pack.height;
      srcW = pack.width;
      input = sharp(pixels, { raw: { width: pack.width, height: pack.height, channels: pack.channels as 1 | 3 } });
    } else {
      const bytes = await this.readFile(ref.path);
      try {
        const meta = await sharp(bytes).metadata();
        srcH = meta.height!;
        srcW = meta.width!;
      } catch (e) {
        throw new ImageDecodeError(ref.path, `cannot decode image (${(e as Error).message})`);
      }
      input = sharp(bytes, { failOn: 'error' });
    }
    const resized = coverResizeSize(srcH, srcW, height, width);
    const { top, left } = centerCropOffset(resized.height, resized.width, height, width);
    let rgb: Buffer;
    try {
      rgb = await input
        .removeAlpha()
        .toColourspace('srgb')
        .resize(resized.width, resized.height, { fit: 'fill', kernel: 'cubic' })
        .extract({ left, top, width, height })
        .raw({ depth: 'uchar' })
        .toBuffer();
    } catch (e) {
      throw new ImageDecodeError(describeImageRef(ref), `cannot decode or resize image (${(e as Error).message})`);
    }
    if (rgb.length !== height * width * 3) {
      throw new ImageDecodeError(describeImageRef(ref), `decoder returned ${rgb.length} bytes for a ${height}x${width} RGB image`);
    }
    const u8 = new Uint8Array(rgb.buffer, rgb.byteOffset, rgb.length);
    return channels === 3 ? u8.slice() : rgbToGray(u8);
  }
}
