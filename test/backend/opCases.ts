/**
 * Ops (with their gradients) that the models run, as small cases that any backend can evaluate, and
 * an evaluator that compares one backend with the pure-JS `cpu` kernels. Inputs are fixed functions of
 * the element index, so a failure is reproducible on every backend.
 */
import { tf, biasAdd } from '../../src/backend';
import { convPadding } from '../../src/nn';

export interface InputSpec {
  shape: number[];
  /** Integer input (indices) with values in [0, intRange); not differentiated. */
  intRange?: number;
  /** Keeps float inputs away from zero: values in [positive, positive + 1]. */
  positive?: number;
}

export interface OpCase {
  name: string;
  inputs: InputSpec[];
  f: (...xs: tf.Tensor[]) => tf.Tensor;
  /** Also compare gradients of sum(f * dy) w.r.t. every float input (default true). */
  grad?: boolean;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Deterministic, smooth-ish values in [-1, 1] without repeats over small ranges. */
function pattern(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(0.731 * i + 1.37 * seed) * Math.cos(0.117 * i + seed);
  return v;
}

export function makeInput(spec: InputSpec, seed: number): tf.Tensor {
  const n = size(spec.shape);
  if (spec.intRange !== undefined) {
    const v = new Int32Array(n);
    for (let i = 0; i < n; i++) v[i] = (i * 7 + seed * 3) % spec.intRange;
    return tf.tensor(v, spec.shape, 'int32');
  }
  const v = pattern(n, seed);
  if (spec.positive !== undefined) for (let i = 0; i < n; i++) v[i] = spec.positive + 0.5 * (v[i] + 1);
  return tf.tensor(v, spec.shape, 'float32');
}

/** Output, then gradients, of one case on the current backend, read back as plain arrays. */
export function evaluate(c: OpCase): Float32Array[] {
  return tf.tidy(() => {
    const xs = c.inputs.map((s, i) => makeInput(s, i + 1));
    const y = c.f(...xs);
    const results = [Float32Array.from(y.dataSync())];
    if (c.grad !== false) {
      const floatIdx = c.inputs.map((s, i) => (s.intRange === undefined ? i : -1)).filter((i) => i >= 0);
      const dy = makeInput({ shape: y.shape }, 99);
      const g = tf.grads((...fs: tf.Tensor[]) => {
        const args = xs.slice();
        floatIdx.forEach((k, j) => (args[k] = fs[j]));
        return c.f(...args);
      });
      for (const t of g(floatIdx.map((k) => xs[k]), dy)) results.push(Float32Array.from(t.dataSync()));
    }
    return results;
  });
}

/** Largest |a - b| over the largest |b| (or 1 when b is tiny): a relative error for the whole tensor. */
export function relativeError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-3);
}

const nhwc = (b: number, h: number, w: number, c: number) => ({ shape: [b, h, w, c] });
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
/**
 * Native TensorFlow accepts only 'same' and 'valid': numeric and explicit paddings are applied the
 * way the models apply them (nn's convPadding, or a pad followed by 'valid').
 */
function padded(x: tf.Tensor, w: tf.Tensor, stride: number, pad: Pad): [tf.Tensor4D, 'same' | 'valid'] {
  const x4 = x as tf.Tensor4D;
  if (pad === 'same' || pad === 'valid') return [x4, pad];
  if (typeof pad === 'number') return convPadding(x4, w.shape[0] ?? 1, w.shape[1] ?? 1, stride, pad, pad);
  return [tf.pad(x4, pad), 'valid'];
}
const conv = (stride: number, pad: Pad, dilation = 1) => (x: tf.Tensor, w: tf.Tensor) => {
  const [xp, p] = padded(x, w, stride, pad);
  return tf.conv2d(xp, w as tf.Tensor4D, stride, p, 'NHWC', dilation);
};
const dwconv = (stride: number, pad: Pad, dilation = 1) => (x: tf.Tensor, w: tf.Tensor) => {
  const [xp, p] = padded(x, w, stride, pad);
  return tf.depthwiseConv2d(xp, w as tf.Tensor4D, stride, p, 'NHWC', dilation);
};

/** [B, H, W, C*r*r] -> [B, H*r, W*r, C] (pixel shuffle, as reshape + transpose: differentiable). */
function pixelShuffle(x: tf.Tensor, r: number): tf.Tensor {
  const [b, h, w, cr] = x.shape;
  const c = cr / (r * r);
  return x.reshape([b, h, w, r, r, c]).transpose([0, 1, 3, 2, 4, 5]).reshape([b, h * r, w * r, c]);
}

/** [B, H*r, W*r, C] -> [B, H, W, C*r*r] (pixel unshuffle). */
function pixelUnshuffle(x: tf.Tensor, r: number): tf.Tensor {
  const [b, hr, wr, c] = x.shape;
  const h = hr / r;
  const w = wr / r;
  return x.reshape([b, h, r, w, r, c]).transpose([0, 1, 3, 2, 4, 5]).reshape([b, h, w, r * r * c]);
}

export const OP_CASES: OpCase[] = [
  // Linear layers, attention products, their gradients (which use every transpose combination).
  { name: 'matMul [5,7]x[7,3]', inputs: [{ shape: [5, 7] }, { shape: [7, 3] }], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul transposeA', inputs: [{ shape: [7, 5] }, { shape: [7, 3] }], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'matMul transposeB', inputs: [{ shape: [5, 7] }, { shape: [3, 7] }], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'matMul transposeA+B', inputs: [{ shape: [7, 5] }, { shape: [3, 7] }], f: (a, b) => tf.matMul(a, b, true, true) },
  { name: 'matMul batched', inputs: [{ shape: [3, 5, 7] }, { shape: [3, 7, 4] }], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul batched transposeA', inputs: [{ shape: [3, 7, 5] }, { shape: [3, 7, 4] }], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'matMul batched transposeB', inputs: [{ shape: [3, 5, 7] }, { shape: [3, 4, 7] }], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'matMul rank 4', inputs: [{ shape: [2, 3, 5, 6] }, { shape: [2, 3, 6, 4] }], f: (a, b) => tf.matMul(a, b) },
  // tfjs-core 4.22's BatchMatMul gradient does not reduce broadcast batch dimensions (it throws on
  // every backend): forward only. Linear layers fold the batch into rows before their matmul.
  { name: 'matMul broadcast weight [2,5,7]x[7,3]', inputs: [{ shape: [2, 5, 7] }, { shape: [7, 3] }], f: (a, b) => tf.matMul(a, b), grad: false },
  { name: 'matMul broadcast lhs [1,5,7]x[3,7,4]', inputs: [{ shape: [1, 5, 7] }, { shape: [3, 7, 4] }], f: (a, b) => tf.matMul(a, b), grad: false },
  // The layouts the wasm BatchMatMul routing distinguishes: transposes with batches, per-head products
  // of attention, a shared matrix on either side, broadcasting between two batches.
  { name: 'matMul batched transposeA+B', inputs: [{ shape: [3, 7, 5] }, { shape: [3, 4, 7] }], f: (a, b) => tf.matMul(a, b, true, true) },
  { name: 'matMul heads K^T V [2,4,16,8]', inputs: [{ shape: [2, 4, 16, 8] }, { shape: [2, 4, 16, 8] }], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'matMul heads Q (KV) [2,4,16,8]x[2,4,8,8]', inputs: [{ shape: [2, 4, 16, 8] }, { shape: [2, 4, 8, 8] }], f: (a, b) => tf.matMul(a, b) },
  // Per-head products large enough for the wasm SIMD kernel's 2 x 16 register tiles and their edges.
  { name: 'matMul heads tile edges [3,2,9,21]x[3,2,21,37]', inputs: [{ shape: [3, 2, 9, 21] }, { shape: [3, 2, 21, 37] }], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul heads transposeB [2,3,17,8]x[2,3,18,8]', inputs: [{ shape: [2, 3, 17, 8] }, { shape: [2, 3, 18, 8] }], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'matMul heads transposeB one column [2,3,17,9]x[2,3,1,9]', inputs: [{ shape: [2, 3, 17, 9] }, { shape: [2, 3, 1, 9] }], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'matMul heads transposeA+B [2,3,8,17]x[2,3,18,8]', inputs: [{ shape: [2, 3, 8, 17] }, { shape: [2, 3, 18, 8] }], f: (a, b) => tf.matMul(a, b, true, true) },
  { name: 'matMul broadcast weight transposeB [2,5,7]x[3,7]', inputs: [{ shape: [2, 5, 7] }, { shape: [3, 7] }], f: (a, b) => tf.matMul(a, b, false, true), grad: false },
  { name: 'matMul broadcast lhs transposeA [1,7,5]x[3,7,4]', inputs: [{ shape: [1, 7, 5] }, { shape: [3, 7, 4] }], f: (a, b) => tf.matMul(a, b, true, false), grad: false },
  // (tfjs' cpu kernel gets [2,1] against [1,3] batches wrong, so the reference case broadcasts one side.)
  // Products large enough to be split over threads (rows, batch entries) with sums past one pass of 256.
  { name: 'matMul split by rows [70,300]x[300,61]', inputs: [{ shape: [70, 300] }, { shape: [300, 61] }], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul split transposeA [300,70]x[300,61]', inputs: [{ shape: [300, 70] }, { shape: [300, 61] }], f: (a, b) => tf.matMul(a, b, true, false), grad: false },
  { name: 'matMul split by batch [4,40,160]x[4,160,50]', inputs: [{ shape: [4, 40, 160] }, { shape: [4, 160, 50] }], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul split broadcast weight [3,41,200]x[200,50]', inputs: [{ shape: [3, 41, 200] }, { shape: [200, 50] }], f: (a, b) => tf.matMul(a, b), grad: false },
  { name: 'matMul broadcast batches [2,3,5,7]x[1,3,4,7]', inputs: [{ shape: [2, 3, 5, 7] }, { shape: [1, 3, 4, 7] }], f: (a, b) => tf.matMul(a, b, false, true), grad: false },

  // Convolutions: patch embedding, GLUMBConv (1x1, depthwise 3x3), DC-AE (3x3, stride 2).
  { name: 'conv2d 3x3 same', inputs: [nhwc(2, 6, 7, 4), { shape: [3, 3, 4, 5] }], f: conv(1, 'same') },
  { name: 'conv2d 3x3 valid', inputs: [nhwc(2, 6, 7, 4), { shape: [3, 3, 4, 5] }], f: conv(1, 'valid') },
  { name: 'conv2d 3x3 pad 1', inputs: [nhwc(2, 6, 7, 4), { shape: [3, 3, 4, 5] }], f: conv(1, 1) },
  { name: 'conv2d 3x3 explicit pad', inputs: [nhwc(2, 6, 7, 4), { shape: [3, 3, 4, 5] }], f: conv(1, [[0, 0], [1, 1], [1, 1], [0, 0]]) },
  { name: 'conv2d 3x3 asymmetric pad', inputs: [nhwc(1, 6, 7, 3), { shape: [3, 3, 3, 2] }], f: conv(1, [[0, 0], [0, 1], [2, 0], [0, 0]]) },
  { name: 'conv2d 3x3 stride 2 pad 1', inputs: [nhwc(2, 8, 8, 4), { shape: [3, 3, 4, 6] }], f: conv(2, 1) },
  { name: 'conv2d 3x3 stride 2 same odd', inputs: [nhwc(1, 7, 9, 3), { shape: [3, 3, 3, 4] }], f: conv(2, 'same') },
  { name: 'conv2d 2x2 stride 2 valid', inputs: [nhwc(2, 8, 6, 3), { shape: [2, 2, 3, 5] }], f: conv(2, 'valid') },
  { name: 'conv2d 1x1', inputs: [nhwc(2, 5, 5, 8), { shape: [1, 1, 8, 6] }], f: conv(1, 'valid') },
  { name: 'conv2d 5x5 stride 2 same', inputs: [nhwc(1, 9, 8, 3), { shape: [5, 5, 3, 4] }], f: conv(2, 'same') },
  { name: 'conv2d 3x3 stride 2 valid even', inputs: [nhwc(1, 8, 8, 3), { shape: [3, 3, 3, 2] }], f: conv(2, 'valid') },
  // tfjs-core has no gradient for dilated convolutions: forward only.
  { name: 'conv2d 3x3 dilation 2', inputs: [nhwc(1, 9, 9, 3), { shape: [3, 3, 3, 4] }], f: conv(1, 'same', 2), grad: false },
  { name: 'depthwise 3x3 pad 1', inputs: [nhwc(2, 6, 7, 5), { shape: [3, 3, 5, 1] }], f: dwconv(1, 1) },
  { name: 'depthwise 3x3 same', inputs: [nhwc(2, 6, 7, 5), { shape: [3, 3, 5, 1] }], f: dwconv(1, 'same') },
  { name: 'depthwise 3x3 explicit pad', inputs: [nhwc(1, 6, 6, 4), { shape: [3, 3, 4, 1] }], f: dwconv(1, [[0, 0], [1, 1], [1, 1], [0, 0]]) },
  { name: 'depthwise 3x3 stride 2', inputs: [nhwc(2, 8, 7, 4), { shape: [3, 3, 4, 1] }], f: dwconv(2, 'same') },
  { name: 'depthwise 5x5 valid', inputs: [nhwc(1, 9, 8, 3), { shape: [5, 5, 3, 1] }], f: dwconv(1, 'valid') },
  { name: 'depthwise multiplier 2', inputs: [nhwc(1, 6, 6, 3), { shape: [3, 3, 3, 2] }], f: dwconv(1, 'same') },
  {
    name: 'conv2dTranspose stride 2',
    inputs: [nhwc(2, 4, 5, 6), { shape: [3, 3, 4, 6] }],
    f: (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 8, 10, 4], 2, 'same'),
  },
  {
    name: 'conv2dTranspose stride 2 valid',
    inputs: [nhwc(1, 3, 4, 5), { shape: [3, 3, 2, 5] }],
    f: (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [1, 7, 9, 2], 2, 'valid'),
  },

  // Norms and activations.
  {
    name: 'layer norm (moments)',
    inputs: [{ shape: [2, 6, 16] }, { shape: [16] }, { shape: [16] }],
    f: (x, g, b) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x.sub(mean).mul(variance.add(1e-6).rsqrt()).mul(g).add(b);
    },
  },
  {
    name: 'rms norm',
    inputs: [{ shape: [2, 6, 16] }, { shape: [16] }],
    f: (x, g) => x.mul(x.square().mean(-1, true).add(1e-6).rsqrt()).mul(g),
  },
  { name: 'relu', inputs: [{ shape: [4, 9] }], f: (x) => tf.relu(x) },
  { name: 'sigmoid', inputs: [{ shape: [4, 9] }], f: (x) => tf.sigmoid(x.mul(3)) },
  { name: 'silu', inputs: [{ shape: [4, 9] }], f: (x) => x.mul(tf.sigmoid(x.mul(3))) },
  { name: 'tanh', inputs: [{ shape: [4, 9] }], f: (x) => tf.tanh(x.mul(2)) },
  { name: 'erf (gelu)', inputs: [{ shape: [4, 9] }], f: (x) => x.mul(tf.erf(x.mul(2 * Math.SQRT1_2)).add(1)).mul(0.5) },
  { name: 'exp', inputs: [{ shape: [4, 9] }], f: (x) => tf.exp(x.mul(2)) },
  { name: 'log, sqrt, pow', inputs: [{ shape: [4, 9], positive: 0.5 }], f: (x) => tf.log(x).add(tf.sqrt(x)).add(tf.pow(x, 1.5)) },
  { name: 'sin, cos', inputs: [{ shape: [4, 9] }], f: (x) => tf.sin(x.mul(3)).add(tf.cos(x.mul(2))) },
  { name: 'softmax', inputs: [{ shape: [2, 3, 10] }], f: (x) => tf.softmax(x.mul(4)) },
  { name: 'masked softmax (where)', inputs: [{ shape: [2, 4, 6] }], f: (x) => tf.softmax(tf.where(tf.range(0, 6).less(4).reshape([1, 1, 6]).tile([2, 4, 1]), x, tf.fill([2, 4, 6], -1e9))) },
  { name: 'mean, sum, max', inputs: [{ shape: [3, 4, 5] }], f: (x) => x.mean(1).add(x.sum(-1, false).reshape([3, 4, 1]).sum(1)).add(x.max(1)) },
  { name: 'biasAdd (native BiasAdd/BiasAddGrad where present)', inputs: [{ shape: [3, 4, 6] }, { shape: [6] }], f: (x, b) => biasAdd(x, b).mul(x) },
  { name: 'broadcast add, mul, div', inputs: [{ shape: [2, 3, 4] }, { shape: [4] }, { shape: [3, 1], positive: 1 }], f: (x, b, s) => x.add(b).mul(x).div(s) },

  // Indexing, shapes, layout changes.
  { name: 'gather axis 0', inputs: [{ shape: [10, 6] }, { shape: [7], intRange: 10 }], f: (t, i) => tf.gather(t, i) },
  { name: 'gather axis 1', inputs: [{ shape: [3, 8, 4] }, { shape: [5], intRange: 8 }], f: (t, i) => tf.gather(t, i, 1) },
  { name: 'concat', inputs: [{ shape: [2, 3, 4] }, { shape: [2, 3, 5] }], f: (a, b) => tf.concat([a, b], -1).mul(tf.concat([b.slice([0, 0, 0], [2, 3, 4]), a, a.slice([0, 0, 0], [2, 3, 1])], 2)) },
  { name: 'slice', inputs: [{ shape: [4, 6, 5] }], f: (x) => x.slice([1, 0, 1], [2, 4, 3]) },
  { name: 'slice rows (one contiguous run)', inputs: [{ shape: [6, 4, 5] }], f: (x) => x.slice([2, 0, 0], [3, -1, -1]) },
  { name: 'split last axis, unstack', inputs: [{ shape: [3, 4, 9] }], f: (x) => {
    const [a, b, c] = tf.split(x, [2, 3, 4], 2);
    const parts = tf.unstack(x, 1);
    return a.sum(2).add(b.mean(2)).add(c.max(2)).add(parts[0].mul(parts[3]).sum(1).reshape([3, 1]));
  } },
  { name: 'sum over leading axes', inputs: [{ shape: [6, 5, 7] }, { shape: [4, 9, 3, 2] }], f: (x, y) => x.sum([0, 1]).sum().add(y.sum([0, 1, 2], true).sum()).add(x.sum(0).mul(x.sum(0)).sum()) },
  { name: 'sum over middle axes', inputs: [{ shape: [3, 20, 5] }, { shape: [2, 4, 5, 3] }], f: (x, y) => x.sum(1).mul(x.sum(1, true).reshape([3, 5])).sum().add(y.sum([1, 2]).square().sum()) },
  // tfjs-core has no StridedSlice gradient: forward only.
  { name: 'stridedSlice', inputs: [{ shape: [4, 6, 5] }], f: (x) => tf.stridedSlice(x, [0, 1, 0], [4, 6, 5], [2, 2, 2]), grad: false },
  { name: 'pad', inputs: [nhwc(1, 4, 5, 2)], f: (x) => tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], 0.5) },
  { name: 'reshape, transpose', inputs: [{ shape: [2, 6, 8] }], f: (x) => x.reshape([2, 6, 2, 4]).transpose([0, 2, 1, 3]).reshape([4, 24]).transpose() },
  { name: 'transpose matrices (tiles and edges)', inputs: [{ shape: [3, 37, 50] }, { shape: [1, 9, 1, 14, 1] }], f: (x, y) => x.transpose([0, 2, 1]).reshape([3, 37, 50]).mul(x).sum(0).add(y.transpose([4, 3, 2, 1, 0]).reshape([14, 9]).transpose().sum().reshape([1, 1])) },
  { name: 'transpose int32 matrix', inputs: [{ shape: [6, 11], intRange: 50 }], f: (i) => i.transpose().cast('float32'), grad: false },
  { name: 'pixel shuffle (depthToSpace)', inputs: [nhwc(2, 3, 4, 8)], f: (x) => pixelShuffle(x, 2) },
  { name: 'pixel unshuffle (spaceToDepth)', inputs: [nhwc(2, 6, 4, 3)], f: (x) => pixelUnshuffle(x, 2) },
  { name: 'nearest upsample x2', inputs: [nhwc(1, 3, 4, 2)], f: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [6, 8]) },
  { name: 'avgPool 2x2', inputs: [nhwc(1, 6, 6, 3)], f: (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid') },
];

/**
 * Cases only some backends accept (native TensorFlow takes no explicit convolution padding): padding
 * on the trailing side wider than the filter reaches, which the wasm Conv2DBackpropInput composite crops.
 */
export const EXPLICIT_PAD_CASES: OpCase[] = [
  {
    name: 'conv2d 3x3 explicit pad wider than filter at the end',
    inputs: [nhwc(1, 6, 6, 2), { shape: [3, 3, 2, 3] }],
    f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, [[0, 0], [1, 3], [0, 2], [0, 0]]),
  },
  {
    name: 'conv2d 3x3 stride 2 explicit pad',
    inputs: [nhwc(1, 7, 6, 2), { shape: [3, 3, 2, 3] }],
    f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, [[0, 0], [2, 1], [1, 3], [0, 0]]),
  },
];
