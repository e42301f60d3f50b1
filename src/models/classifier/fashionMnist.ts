/**
 * A small convolutional classifier for Fashion-MNIST (28x28 grayscale, 10 classes). It has no upstream
 * counterpart: it is this project's judge of generated samples (does a sample prompted with "a photo
 * of a sneaker" look like a sneaker?) and a compact feature space for FID on that data set.
 *
 * Architecture: three 3x3 convolution stages, each ReLU then 2x2 max-pool (28 -> 14 -> 7 -> 4, the last
 * pool padding 7 to 8), flatten, one hidden Linear (the `features` output), then the class logits.
 * About 190k parameters (0.75 MB in float32). Keeping the spatial layout up to the hidden layer (rather
 * than global pooling) makes it learn the classes in a few epochs.
 */
import { tf, Tensor2D, Tensor4D } from '../../backend';
import { Conv2d, Linear, Module } from '../../nn';

/** `config.json` of the classifier (snake_case, as the other model configs). */
export interface FashionMnistClassifierConfig {
  /** Input channels (1: grayscale). */
  in_channels: number;
  /** Output width of each convolution stage. */
  channels: [number, number, number];
  /** Width of the penultimate layer, i.e. of `features()`. */
  hidden_dim: number;
  num_classes: number;
  /** Input side in pixels; inputs of another size are rejected. */
  sample_size: number;
}

export const FASHION_MNIST_CLASSIFIER_DEFAULTS: Readonly<FashionMnistClassifierConfig> = Object.freeze({
  in_channels: 1,
  channels: [32, 64, 64] as [number, number, number],
  hidden_dim: 128,
  num_classes: 10,
  sample_size: 28,
});

/** The 10 Fashion-MNIST class names, in label order (0..9), as the data set documents them. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

/**
 * Validates a (possibly partial) config object; errors name `source`, the field and what was expected.
 * Missing fields take the defaults; unknown fields are errors (keys starting with `_` are metadata).
 */
export function parseClassifierConfig(raw: unknown, source = 'classifier config'): FashionMnistClassifierConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${source}: expected a JSON object`);
  const obj = raw as Record<string, unknown>;
  const known = new Set(Object.keys(FASHION_MNIST_CLASSIFIER_DEFAULTS));
  for (const k of Object.keys(obj)) {
    if (!k.startsWith('_') && !known.has(k)) throw new Error(`${source}: unknown field '${k}' (expected one of ${[...known].join(', ')})`);
  }
  const cfg = { ...FASHION_MNIST_CLASSIFIER_DEFAULTS, ...obj } as FashionMnistClassifierConfig;
  const posInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
  for (const f of ['in_channels', 'hidden_dim', 'num_classes', 'sample_size'] as const) {
    if (!posInt(cfg[f])) throw new Error(`${source}: field '${f}' must be a positive integer, got ${JSON.stringify(cfg[f])}`);
  }
  if (!Array.isArray(cfg.channels) || cfg.channels.length !== 3 || !cfg.channels.every(posInt)) {
    throw new Error(`${source}: field 'channels' must be 3 positive integers, got ${JSON.stringify(cfg.channels)}`);
  }
  return { ...cfg, channels: [...cfg.channels] as [number, number, number] };
}

/** The Fashion-MNIST judge. Parameter keys: `conv1.*`, `conv2.*`, `conv3.*`, `fc.*`, `classifier.*`. */
export class FashionMnistClassifier extends Module {
  readonly config: FashionMnistClassifierConfig;
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly conv3: Conv2d;
  readonly fc: Linear;
  readonly classifier: Linear;

  constructor(config: Partial<FashionMnistClassifierConfig> = {}) {
    super();
    this.config = parseClassifierConfig(config);
    const [c1, c2, c3] = this.config.channels;
    this.conv1 = this.module('conv1', new Conv2d(this.config.in_channels, c1, 3, { padding: 1 }));
    this.conv2 = this.module('conv2', new Conv2d(c1, c2, 3, { padding: 1 }));
    this.conv3 = this.module('conv3', new Conv2d(c2, c3, 3, { padding: 1 }));
    this.fc = this.module('fc', new Linear(this.flatSide ** 2 * c3, this.config.hidden_dim));
    this.classifier = this.module('classifier', new Linear(this.config.hidden_dim, this.config.num_classes));
  }

  /** Side of the last feature map: two 'valid' 2x2 pools, then one 'same' pool. */
  get flatSide(): number {
    return Math.ceil(Math.floor(Math.floor(this.config.sample_size / 2) / 2) / 2);
  }

  /** Width of `features()`. */
  get featureDim(): number {
    return this.config.hidden_dim;
  }

  /** x: [B, 28, 28, 1] in [-1, 1] -> penultimate activations [B, hidden_dim] (after ReLU). */
  features(x: Tensor4D): Tensor2D {
    this.checkInput(x);
    return tf.tidy(() => {
      // 1. Three conv + pool stages: 28 -> 14 -> 7 -> 4.
      let h = tf.maxPool(tf.relu(this.conv1.forward(x)), 2, 2, 'valid') as Tensor4D; // [B, 14, 14, c1]
      h = tf.maxPool(tf.relu(this.conv2.forward(h)), 2, 2, 'valid') as Tensor4D; // [B, 7, 7, c2]
      h = tf.maxPool(tf.relu(this.conv3.forward(h)), 2, 2, 'same') as Tensor4D; // [B, 4, 4, c3]
      // 2. Hidden layer on the flattened map: the feature space.
      const flat = h.reshape([h.shape[0], -1]); // [B, 16 * c3]
      return tf.relu(this.fc.forward(flat)) as Tensor2D; // [B, hidden_dim]
    });
  }

  /** x: [B, 28, 28, 1] in [-1, 1] -> class logits [B, num_classes]. */
  forward(x: Tensor4D): Tensor2D {
    return tf.tidy(() => this.classifier.forward(this.features(x)) as Tensor2D);
  }

  private checkInput(x: Tensor4D): void {
    const s = this.config.sample_size;
    const c = this.config.in_channels;
    if (x.rank !== 4 || x.shape[1] !== s || x.shape[2] !== s || x.shape[3] !== c) {
      throw new Error(`FashionMnistClassifier: expected input [B, ${s}, ${s}, ${c}] (NHWC in [-1, 1]), got [${x.shape.join(', ')}]`);
    }
  }
}
