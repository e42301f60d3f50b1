/**
 * Pluggable feature extractors for FID: a network that turns a batch of 8-bit RGB images into feature
 * rows, and optionally class logits.
 *
 * - `inception`: pytorch-fid's standard extractor (`src/pytorch_fid/fid_score.py`: images as [0, 1]
 *   floats, the FID Inception-v3 resizes bilinearly to 299 and reads the 2048-d pool3 features).
 *   Images of different sizes are resized one by one, so a batch may mix sizes.
 * - `fashion-mnist`: this project's Fashion-MNIST classifier (models/classifier/fashionMnist.ts): FID
 *   in its penultimate feature space (the domain-specific analogue of Inception features), and its
 *   logits for the class accuracy of samples. Images become 28x28 luma in [-1, 1], the classifier's
 *   training input.
 *
 * Each extractor has an `identity` (kind, weights digest, preprocessing) that keys the statistics cache:
 * a retrained classifier or other Inception weights never reuse stale statistics.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { tf, Tensor2D, Tensor4D } from '../backend';
import { FIDInceptionV3 } from '../models/inception/fidInception';
import { FASHION_MNIST_CLASSES } from '../models/classifier/fashionMnist';
import { loadFidInception } from '../io/pretrained/inception';
import { DEFAULT_CLASSIFIER_DIR, loadFashionMnistClassifier } from '../io/pretrained/classifier';
import { ImageU8, cropU8, resizeU8 } from './imageResize';

export const FEATURE_KINDS = ['inception', 'fashion-mnist'] as const;
export type FeatureKind = (typeof FEATURE_KINDS)[number];

/** Features of a batch, as host arrays. */
export interface ExtractedFeatures {
  /** [B, dim] row-major. */
  features: Float32Array;
  /** [B, classNames.length] row-major, for extractors that classify. */
  logits?: Float32Array;
}

export interface FeatureExtractor {
  /** Short name for reports (`inception`, `fashion-mnist`, ...). */
  readonly name: string;
  /** Everything that decides the features (kind, weights digest, preprocessing): the cache key part. */
  readonly identity: string;
  /** Feature width. */
  readonly dim: number;
  /** Class names in logit order, when the extractor is a classifier. */
  readonly classNames?: readonly string[];
  /** Features of 8-bit RGB images (any sizes). */
  extract(images: ImageU8[]): ExtractedFeatures;
  /** Frees the network's weights. */
  dispose(): void;
}

/** sha256 of a file's bytes, streamed in 8 MiB chunks (the Inception weights are ~95 MB). */
export function fileDigest(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(8 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function checkRgb(img: ImageU8): void {
  if (img.channels !== 3 || img.data.length !== img.width * img.height * 3) {
    throw new Error(`feature extractor: expected an 8-bit RGB image, got ${img.width}x${img.height}x${img.channels} with ${img.data.length} bytes`);
  }
}

/** pytorch-fid's Inception-v3 pool3 features. */
export class InceptionExtractor implements FeatureExtractor {
  readonly name = 'inception';
  readonly dim = FIDInceptionV3.FEATURE_DIM;

  /** `weightsId` names the weights (e.g. their digest) in `identity`. */
  constructor(readonly model: FIDInceptionV3, private readonly weightsId: string) {}

  get identity(): string {
    return `inception-fid/pool3/bilinear299/${this.weightsId}`;
  }

  extract(images: ImageU8[]): ExtractedFeatures {
    if (images.length === 0) return { features: new Float32Array(0) };
    const s = FIDInceptionV3.INPUT_SIZE;
    const pooled = tf.tidy(() => {
      // 1. Each image to [1, 299, 299, 3] in [0, 1] (ToTensor, then F.interpolate bilinear,
      //    align_corners=False = half-pixel centres), so sizes may differ within a batch.
      const batch = tf.concat(
        images.map((img) => {
          checkRgb(img);
          const x = tf.tensor4d(img.data, [1, img.height, img.width, 3], 'int32').toFloat().div(255) as Tensor4D;
          return img.height === s && img.width === s ? x : tf.image.resizeBilinear(x, [s, s], false, true);
        }),
        0,
      ) as Tensor4D;
      // 2. The network scales to [-1, 1] and pools to [B, 2048].
      return this.model.forward(batch);
    });
    const features = pooled.dataSync() as Float32Array;
    pooled.dispose();
    return { features };
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** Anything with the Fashion-MNIST classifier's API (tests use small random ones). */
export interface ImageClassifier {
  readonly config: { in_channels: number; sample_size: number; num_classes: number };
  readonly featureDim: number;
  features(x: Tensor4D): Tensor2D;
  forward(x: Tensor4D): Tensor2D;
  dispose(): void;
}

/**
 * How an image of another size becomes the classifier's square input: `resize` (Pillow bicubic on
 * the whole image) or `center-crop` (for samples generated on a padded canvas, e.g. 28 -> 32).
 */
export type ClassifierFit = 'resize' | 'center-crop';

/** ITU-R 601-2 luma with Pillow's fixed-point rounding (`Image.convert('L')`). */
function toLuma(img: ImageU8): ImageU8 {
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = (img.data[3 * i] * 19595 + img.data[3 * i + 1] * 38470 + img.data[3 * i + 2] * 7471 + 0x8000) >> 16;
  }
  return { data: out, width: img.width, height: img.height, channels: 1 };
}

/** Penultimate features and logits of an image classifier (the Fashion-MNIST judge). */
export class ClassifierExtractor implements FeatureExtractor {
  readonly dim: number;

  constructor(
    readonly model: ImageClassifier,
    readonly classNames: readonly string[],
    private readonly weightsId: string,
    readonly fit: ClassifierFit = 'resize',
    readonly name = 'fashion-mnist',
  ) {
    if (classNames.length !== model.config.num_classes) {
      throw new Error(`classifier has ${model.config.num_classes} classes but ${classNames.length} class names were given`);
    }
    if (model.config.in_channels !== 1 && model.config.in_channels !== 3) {
      throw new Error(`classifier input must have 1 or 3 channels, got in_channels ${model.config.in_channels}`);
    }
    this.dim = model.featureDim;
  }

  get identity(): string {
    const c = this.model.config;
    return `${this.name}/${c.sample_size}x${c.sample_size}x${c.in_channels}/${this.fit}/${this.weightsId}`;
  }

  /** One image as the classifier's uint8 input (size `sample_size`, 1 or 3 channels). */
  private prepare(img: ImageU8): ImageU8 {
    checkRgb(img);
    const s = this.model.config.sample_size;
    let x = this.model.config.in_channels === 1 ? toLuma(img) : img;
    if (x.width === s && x.height === s) return x;
    if (this.fit === 'center-crop' && x.width >= s && x.height >= s) {
      x = cropU8(x, Math.floor((x.height - s) / 2), Math.floor((x.width - s) / 2), s, s);
      return x;
    }
    return resizeU8(x, s, s, 'bicubic');
  }

  extract(images: ImageU8[]): ExtractedFeatures {
    if (images.length === 0) return { features: new Float32Array(0), logits: new Float32Array(0) };
    const { sample_size: s, in_channels: c } = this.model.config;
    const pixels = new Float32Array(images.length * s * s * c);
    images.forEach((img, i) => {
      const u8 = this.prepare(img).data;
      // x / 255 * 2 - 1: the classifier's training range.
      for (let j = 0; j < u8.length; j++) pixels[i * u8.length + j] = (u8[j] / 255 - 0.5) / 0.5;
    });
    const [f, l] = tf.tidy(() => {
      const x = tf.tensor4d(pixels, [images.length, s, s, c]);
      const feats = this.model.features(x);
      // The logits from the same features (the classifier's head is one Linear after them).
      return [feats, this.model.forward(x)] as [Tensor2D, Tensor2D];
    });
    const features = f.dataSync() as Float32Array;
    const logits = l.dataSync() as Float32Array;
    f.dispose();
    l.dispose();
    return { features, logits };
  }

  dispose(): void {
    this.model.dispose();
  }
}

export interface ExtractorOptions {
  /** The FID Inception weights (`pt_inception-2015-12-05-6726825d.pth` or a safetensors copy). */
  inception?: string | null;
  /** The classifier folder (config.json + model.safetensors). */
  classifier?: string | null;
  /** How the classifier's input is made from other sizes. */
  fit?: ClassifierFit;
  /** Class names in label order (default: the Fashion-MNIST classes). */
  classNames?: readonly string[];
}

/** Builds an extractor from its weights on disk; errors name the missing file or option. */
export function createFeatureExtractor(kind: FeatureKind, opts: ExtractorOptions): FeatureExtractor {
  if (kind === 'inception') {
    if (!opts.inception) throw new Error('Inception features need the FID weights: pass --inception FILE (pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth)');
    const model = loadFidInception(opts.inception);
    return new InceptionExtractor(model, fileDigest(opts.inception).slice(0, 16));
  }
  if (kind === 'fashion-mnist') {
    const dir = opts.classifier ?? DEFAULT_CLASSIFIER_DIR;
    const model = loadFashionMnistClassifier(dir);
    try {
      const digest = fileDigest(path.join(dir, 'model.safetensors')).slice(0, 16);
      return new ClassifierExtractor(model, opts.classNames ?? FASHION_MNIST_CLASSES, digest, opts.fit ?? 'resize');
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  throw new Error(`unknown feature extractor "${kind as string}" (expected ${FEATURE_KINDS.join(' or ')})`);
}

