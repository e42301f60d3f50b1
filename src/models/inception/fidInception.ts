/**
 * The FID variant of Inception-v3 (mseitzer/pytorch-fid `src/pytorch_fid/inception.py`:
 * `InceptionV3(output_blocks=[3])` with `fid_inception_v3()`), built on torchvision's Inception3
 * module names so the standard FID checkpoint `pt_inception-2015-12-05-6726825d.pth` loads key for key
 * (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch_pool.bn.running_var`, ...).
 *
 * Differences from torchvision's Inception3 that FID depends on (they reproduce the TF graph the
 * original FID used):
 * - Mixed_5b/5c/5d (FIDInceptionA), Mixed_6b..6e (FIDInceptionC) and Mixed_7b (FIDInceptionE_1): the
 *   pool branch averages without counting padded zeros (`count_include_pad=False`);
 * - Mixed_7c (FIDInceptionE_2): the pool branch is a 3x3 max pool, not an average pool;
 * - input: bilinear resize to 299x299 (align_corners=False, no antialias), then 2x - 1.
 *
 * Activations are NHWC; the result is the 2048-d average-pooled feature (pool3).
 */
import { tf, Tensor, Tensor4D } from '../../backend';
import { Module, Parameter, ones, zeros, torchDefault, convPadding } from '../../nn';

/** BatchNorm epsilon of BasicConv2d (torchvision: `nn.BatchNorm2d(out, eps=0.001)`). */
const BN_EPS = 1e-3;

/** torchvision `BasicConv2d`: conv (no bias) -> BatchNorm (running statistics) -> ReLU. */
export class BasicConv2d extends Module {
  readonly conv: ConvWeight;
  readonly bn: BatchNorm2d;

  constructor(
    inC: number,
    outC: number,
    readonly kernel: [number, number],
    readonly stride = 1,
    readonly padding: [number, number] = [0, 0],
  ) {
    super();
    this.conv = this.module('conv', new ConvWeight(inC, outC, kernel));
    this.bn = this.module('bn', new BatchNorm2d(outC));
  }

  /** x: [B, H, W, in] -> [B, H', W', out] */
  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const [ph, pw] = this.padding;
      const [xp, pad] = convPadding(x, this.kernel[0], this.kernel[1], this.stride, ph, pw);
      const y = tf.conv2d(xp, this.conv.weight.value as Tensor4D, this.stride, pad);
      return tf.relu(this.bn.forward(y)) as Tensor4D;
    });
  }
}

/** A bias-free convolution weight `weight` [out, in, kh, kw] (the `conv` child of BasicConv2d). */
export class ConvWeight extends Module {
  readonly weight: Parameter;
  constructor(inC: number, outC: number, kernel: [number, number]) {
    super();
    this.weight = this.param('weight', [outC, inC, kernel[0], kernel[1]], torchDefault(inC * kernel[0] * kernel[1]), 'conv2d');
  }
}

/** `nn.BatchNorm2d` in eval mode over the channel (last) axis. */
export class BatchNorm2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly running_mean: Parameter;
  readonly running_var: Parameter;

  constructor(readonly channels: number) {
    super();
    this.weight = this.param('weight', [channels], ones);
    this.bias = this.param('bias', [channels], zeros);
    this.running_mean = this.buffer('running_mean', [channels], zeros);
    this.running_var = this.buffer('running_var', [channels], ones);
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const scale = this.weight.value.mul(this.running_var.value.add(BN_EPS).rsqrt());
      return x.sub(this.running_mean.value).mul(scale).add(this.bias.value);
    });
  }
}

const sq = (k: number): [number, number] => [k, k];

/** 3x3 average pool, stride 1, padding 1, padded zeros not counted (TF 'SAME' semantics). */
function avgPool3NoPad(x: Tensor4D): Tensor4D {
  return tf.avgPool(x, 3, 1, 'same');
}

/** FIDInceptionA (Mixed_5b/5c/5d): [1x1, 5x5, 3x3dbl, pool]. */
export class FIDInceptionA extends Module {
  readonly branch1x1: BasicConv2d;
  readonly branch5x5_1: BasicConv2d;
  readonly branch5x5_2: BasicConv2d;
  readonly branch3x3dbl_1: BasicConv2d;
  readonly branch3x3dbl_2: BasicConv2d;
  readonly branch3x3dbl_3: BasicConv2d;
  readonly branch_pool: BasicConv2d;

  constructor(inC: number, poolFeatures: number) {
    super();
    this.branch1x1 = this.module('branch1x1', new BasicConv2d(inC, 64, sq(1)));
    this.branch5x5_1 = this.module('branch5x5_1', new BasicConv2d(inC, 48, sq(1)));
    this.branch5x5_2 = this.module('branch5x5_2', new BasicConv2d(48, 64, sq(5), 1, [2, 2]));
    this.branch3x3dbl_1 = this.module('branch3x3dbl_1', new BasicConv2d(inC, 64, sq(1)));
    this.branch3x3dbl_2 = this.module('branch3x3dbl_2', new BasicConv2d(64, 96, sq(3), 1, [1, 1]));
    this.branch3x3dbl_3 = this.module('branch3x3dbl_3', new BasicConv2d(96, 96, sq(3), 1, [1, 1]));
    this.branch_pool = this.module('branch_pool', new BasicConv2d(inC, poolFeatures, sq(1)));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const b1 = this.branch1x1.forward(x);
      const b5 = this.branch5x5_2.forward(this.branch5x5_1.forward(x));
      const b3 = this.branch3x3dbl_3.forward(this.branch3x3dbl_2.forward(this.branch3x3dbl_1.forward(x)));
      const bp = this.branch_pool.forward(avgPool3NoPad(x));
      return tf.concat([b1, b5, b3, bp], 3);
    });
  }
}

/** torchvision InceptionB (Mixed_6a): [3x3 stride 2, 3x3dbl, max pool 3/2]. */
export class InceptionB extends Module {
  readonly branch3x3: BasicConv2d;
  readonly branch3x3dbl_1: BasicConv2d;
  readonly branch3x3dbl_2: BasicConv2d;
  readonly branch3x3dbl_3: BasicConv2d;

  constructor(inC: number) {
    super();
    this.branch3x3 = this.module('branch3x3', new BasicConv2d(inC, 384, sq(3), 2));
    this.branch3x3dbl_1 = this.module('branch3x3dbl_1', new BasicConv2d(inC, 64, sq(1)));
    this.branch3x3dbl_2 = this.module('branch3x3dbl_2', new BasicConv2d(64, 96, sq(3), 1, [1, 1]));
    this.branch3x3dbl_3 = this.module('branch3x3dbl_3', new BasicConv2d(96, 96, sq(3), 2));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const b3 = this.branch3x3.forward(x);
      const bd = this.branch3x3dbl_3.forward(this.branch3x3dbl_2.forward(this.branch3x3dbl_1.forward(x)));
      const bp = tf.maxPool(x, 3, 2, 'valid');
      return tf.concat([b3, bd, bp], 3);
    });
  }
}

/** FIDInceptionC (Mixed_6b..6e): [1x1, 7x7, 7x7dbl, pool] with factorised 1x7 / 7x1 convolutions. */
export class FIDInceptionC extends Module {
  readonly branch1x1: BasicConv2d;
  readonly branch7x7_1: BasicConv2d;
  readonly branch7x7_2: BasicConv2d;
  readonly branch7x7_3: BasicConv2d;
  readonly branch7x7dbl_1: BasicConv2d;
  readonly branch7x7dbl_2: BasicConv2d;
  readonly branch7x7dbl_3: BasicConv2d;
  readonly branch7x7dbl_4: BasicConv2d;
  readonly branch7x7dbl_5: BasicConv2d;
  readonly branch_pool: BasicConv2d;

  constructor(inC: number, c7: number) {
    super();
    const row = (i: number, o: number) => new BasicConv2d(i, o, [1, 7], 1, [0, 3]);
    const col = (i: number, o: number) => new BasicConv2d(i, o, [7, 1], 1, [3, 0]);
    this.branch1x1 = this.module('branch1x1', new BasicConv2d(inC, 192, sq(1)));
    this.branch7x7_1 = this.module('branch7x7_1', new BasicConv2d(inC, c7, sq(1)));
    this.branch7x7_2 = this.module('branch7x7_2', row(c7, c7));
    this.branch7x7_3 = this.module('branch7x7_3', col(c7, 192));
    this.branch7x7dbl_1 = this.module('branch7x7dbl_1', new BasicConv2d(inC, c7, sq(1)));
    this.branch7x7dbl_2 = this.module('branch7x7dbl_2', col(c7, c7));
    this.branch7x7dbl_3 = this.module('branch7x7dbl_3', row(c7, c7));
    this.branch7x7dbl_4 = this.module('branch7x7dbl_4', col(c7, c7));
    this.branch7x7dbl_5 = this.module('branch7x7dbl_5', row(c7, 192));
    this.branch_pool = this.module('branch_pool', new BasicConv2d(inC, 192, sq(1)));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const b1 = this.branch1x1.forward(x);
      const b7 = this.branch7x7_3.forward(this.branch7x7_2.forward(this.branch7x7_1.forward(x)));
      let bd = this.branch7x7dbl_1.forward(x);
      for (const m of [this.branch7x7dbl_2, this.branch7x7dbl_3, this.branch7x7dbl_4, this.branch7x7dbl_5]) bd = m.forward(bd);
      const bp = this.branch_pool.forward(avgPool3NoPad(x));
      return tf.concat([b1, b7, bd, bp], 3);
    });
  }
}

/** torchvision InceptionD (Mixed_7a): [3x3 stride 2, 7x7x3 stride 2, max pool 3/2]. */
export class InceptionD extends Module {
  readonly branch3x3_1: BasicConv2d;
  readonly branch3x3_2: BasicConv2d;
  readonly branch7x7x3_1: BasicConv2d;
  readonly branch7x7x3_2: BasicConv2d;
  readonly branch7x7x3_3: BasicConv2d;
  readonly branch7x7x3_4: BasicConv2d;

  constructor(inC: number) {
    super();
    this.branch3x3_1 = this.module('branch3x3_1', new BasicConv2d(inC, 192, sq(1)));
    this.branch3x3_2 = this.module('branch3x3_2', new BasicConv2d(192, 320, sq(3), 2));
    this.branch7x7x3_1 = this.module('branch7x7x3_1', new BasicConv2d(inC, 192, sq(1)));
    this.branch7x7x3_2 = this.module('branch7x7x3_2', new BasicConv2d(192, 192, [1, 7], 1, [0, 3]));
    this.branch7x7x3_3 = this.module('branch7x7x3_3', new BasicConv2d(192, 192, [7, 1], 1, [3, 0]));
    this.branch7x7x3_4 = this.module('branch7x7x3_4', new BasicConv2d(192, 192, sq(3), 2));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const b3 = this.branch3x3_2.forward(this.branch3x3_1.forward(x));
      let b7 = this.branch7x7x3_1.forward(x);
      for (const m of [this.branch7x7x3_2, this.branch7x7x3_3, this.branch7x7x3_4]) b7 = m.forward(b7);
      const bp = tf.maxPool(x, 3, 2, 'valid');
      return tf.concat([b3, b7, bp], 3);
    });
  }
}

/**
 * FIDInceptionE_1 / _2 (Mixed_7b / 7c): [1x1, cat(1x3, 3x1), cat(1x3, 3x1) after 3x3, pool]; the pool
 * branch averages without padding (`_1`) or takes the max (`_2`).
 */
export class FIDInceptionE extends Module {
  readonly branch1x1: BasicConv2d;
  readonly branch3x3_1: BasicConv2d;
  readonly branch3x3_2a: BasicConv2d;
  readonly branch3x3_2b: BasicConv2d;
  readonly branch3x3dbl_1: BasicConv2d;
  readonly branch3x3dbl_2: BasicConv2d;
  readonly branch3x3dbl_3a: BasicConv2d;
  readonly branch3x3dbl_3b: BasicConv2d;
  readonly branch_pool: BasicConv2d;

  constructor(inC: number, readonly pool: 'avg' | 'max') {
    super();
    this.branch1x1 = this.module('branch1x1', new BasicConv2d(inC, 320, sq(1)));
    this.branch3x3_1 = this.module('branch3x3_1', new BasicConv2d(inC, 384, sq(1)));
    this.branch3x3_2a = this.module('branch3x3_2a', new BasicConv2d(384, 384, [1, 3], 1, [0, 1]));
    this.branch3x3_2b = this.module('branch3x3_2b', new BasicConv2d(384, 384, [3, 1], 1, [1, 0]));
    this.branch3x3dbl_1 = this.module('branch3x3dbl_1', new BasicConv2d(inC, 448, sq(1)));
    this.branch3x3dbl_2 = this.module('branch3x3dbl_2', new BasicConv2d(448, 384, sq(3), 1, [1, 1]));
    this.branch3x3dbl_3a = this.module('branch3x3dbl_3a', new BasicConv2d(384, 384, [1, 3], 1, [0, 1]));
    this.branch3x3dbl_3b = this.module('branch3x3dbl_3b', new BasicConv2d(384, 384, [3, 1], 1, [1, 0]));
    this.branch_pool = this.module('branch_pool', new BasicConv2d(inC, 192, sq(1)));
  }

  forward(x: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const b1 = this.branch1x1.forward(x);
      const a = this.branch3x3_1.forward(x);
      const b3 = tf.concat([this.branch3x3_2a.forward(a), this.branch3x3_2b.forward(a)], 3);
      const d = this.branch3x3dbl_2.forward(this.branch3x3dbl_1.forward(x));
      const bd = tf.concat([this.branch3x3dbl_3a.forward(d), this.branch3x3dbl_3b.forward(d)], 3);
      const pooled = this.pool === 'avg' ? avgPool3NoPad(x) : tf.maxPool(x, 3, 1, 'same');
      const bp = this.branch_pool.forward(pooled);
      return tf.concat([b1, b3, bd, bp], 3);
    });
  }
}

/** Outputs of `FIDInceptionV3.run`: pool3 and, on request, every block's output. */
export interface InceptionOutputs {
  /** [B, 2048] */
  pool3: Tensor;
  /** Inputs after resize and scaling, [B, 299, 299, 3] (when `keepIntermediates`). */
  preprocessed?: Tensor4D;
  /** Outputs of blocks 0, 1, 2, NHWC (when `keepIntermediates`). */
  blocks?: Tensor4D[];
}

/** The whole FID feature extractor: preprocessing, four blocks, global average pool. */
export class FIDInceptionV3 extends Module {
  readonly Conv2d_1a_3x3: BasicConv2d;
  readonly Conv2d_2a_3x3: BasicConv2d;
  readonly Conv2d_2b_3x3: BasicConv2d;
  readonly Conv2d_3b_1x1: BasicConv2d;
  readonly Conv2d_4a_3x3: BasicConv2d;
  readonly Mixed_5b: FIDInceptionA;
  readonly Mixed_5c: FIDInceptionA;
  readonly Mixed_5d: FIDInceptionA;
  readonly Mixed_6a: InceptionB;
  readonly Mixed_6b: FIDInceptionC;
  readonly Mixed_6c: FIDInceptionC;
  readonly Mixed_6d: FIDInceptionC;
  readonly Mixed_6e: FIDInceptionC;
  readonly Mixed_7a: InceptionD;
  readonly Mixed_7b: FIDInceptionE;
  readonly Mixed_7c: FIDInceptionE;
  /** Input side length after resizing. */
  static readonly INPUT_SIZE = 299;
  static readonly FEATURE_DIM = 2048;

  constructor() {
    super();
    // Block 0: 299 -> 147 -> 147 -> 73 (max pool)
    this.Conv2d_1a_3x3 = this.module('Conv2d_1a_3x3', new BasicConv2d(3, 32, sq(3), 2));
    this.Conv2d_2a_3x3 = this.module('Conv2d_2a_3x3', new BasicConv2d(32, 32, sq(3)));
    this.Conv2d_2b_3x3 = this.module('Conv2d_2b_3x3', new BasicConv2d(32, 64, sq(3), 1, [1, 1]));
    // Block 1: 73 -> 71 -> 35 (max pool)
    this.Conv2d_3b_1x1 = this.module('Conv2d_3b_1x1', new BasicConv2d(64, 80, sq(1)));
    this.Conv2d_4a_3x3 = this.module('Conv2d_4a_3x3', new BasicConv2d(80, 192, sq(3)));
    // Block 2: 35 -> 17
    this.Mixed_5b = this.module('Mixed_5b', new FIDInceptionA(192, 32));
    this.Mixed_5c = this.module('Mixed_5c', new FIDInceptionA(256, 64));
    this.Mixed_5d = this.module('Mixed_5d', new FIDInceptionA(288, 64));
    this.Mixed_6a = this.module('Mixed_6a', new InceptionB(288));
    this.Mixed_6b = this.module('Mixed_6b', new FIDInceptionC(768, 128));
    this.Mixed_6c = this.module('Mixed_6c', new FIDInceptionC(768, 160));
    this.Mixed_6d = this.module('Mixed_6d', new FIDInceptionC(768, 160));
    this.Mixed_6e = this.module('Mixed_6e', new FIDInceptionC(768, 192));
    // Block 3: 17 -> 8 -> 1 (average pool)
    this.Mixed_7a = this.module('Mixed_7a', new InceptionD(768));
    this.Mixed_7b = this.module('Mixed_7b', new FIDInceptionE(1280, 'avg'));
    this.Mixed_7c = this.module('Mixed_7c', new FIDInceptionE(2048, 'max'));
  }

  /**
   * pytorch-fid's input step: bilinear resize to 299x299 (half-pixel centres = align_corners=False,
   * no antialias) and [0, 1] -> [-1, 1]. images: [B, H, W, 3] in [0, 1].
   */
  preprocess(images: Tensor4D): Tensor4D {
    return tf.tidy(() => {
      const s = FIDInceptionV3.INPUT_SIZE;
      const [, h, w] = images.shape;
      const resized = h === s && w === s ? images : tf.image.resizeBilinear(images, [s, s], false, true);
      return resized.mul(2).sub(1) as Tensor4D;
    });
  }

  /** The four blocks on preprocessed input; `keepIntermediates` also returns blocks 0-2 and the input. */
  run(images: Tensor4D, opts: { keepIntermediates?: boolean } = {}): InceptionOutputs {
    return tf.tidy(() => {
      const keep = opts.keepIntermediates ?? false;
      const x0 = this.preprocess(images);
      // 1. Block 0
      let x = this.Conv2d_2b_3x3.forward(this.Conv2d_2a_3x3.forward(this.Conv2d_1a_3x3.forward(x0)));
      const b0 = tf.maxPool(x, 3, 2, 'valid'); // [B, 73, 73, 64]
      // 2. Block 1
      x = this.Conv2d_4a_3x3.forward(this.Conv2d_3b_1x1.forward(b0));
      const b1 = tf.maxPool(x, 3, 2, 'valid'); // [B, 35, 35, 192]
      // 3. Block 2
      x = b1;
      for (const m of [this.Mixed_5b, this.Mixed_5c, this.Mixed_5d, this.Mixed_6a, this.Mixed_6b, this.Mixed_6c, this.Mixed_6d, this.Mixed_6e]) {
        x = m.forward(x);
      }
      const b2 = x; // [B, 17, 17, 768]
      // 4. Block 3 and the global average pool
      x = this.Mixed_7c.forward(this.Mixed_7b.forward(this.Mixed_7a.forward(b2))); // [B, 8, 8, 2048]
      const pool3 = x.mean([1, 2]); // [B, 2048]
      return keep ? { pool3, preprocessed: x0, blocks: [b0, b1, b2] } : { pool3 };
    });
  }

  /** images [B, H, W, 3] in [0, 1] -> pool3 features [B, 2048]. */
  forward(images: Tensor4D): Tensor {
    return tf.tidy(() => this.run(images).pool3);
  }
}
