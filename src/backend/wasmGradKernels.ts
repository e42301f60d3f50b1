/**
 * Gradient kernels that tfjs-backend-wasm 4.22 does not ship (`Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropFilter`, `DepthwiseConv2dNativeBackpropInput`, `UnsortedSegmentSum`), composed from kernels
 * it has (strided slices, matmuls, pads, sums, a flipped depthwise convolution). NHWC only, as the
 * wasm backend itself. A kernel is registered only where wasm has none of its own.
 */
import * as tf from '@tensorflow/tfjs';
import { wasmHeap } from './kernels/wasm/heap';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/** Convolution geometry in the names used below. */
interface Geometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  kh: number;
  kw: number;
  sy: number;
  sx: number;
  dy: number;
  dx: number;
  top: number;
  bottom: number;
  left: number;
  right: number;
}

function geometry(
  inShape: number[],
  filterShape: number[],
  strides: number | [number, number],
  dilations: number | [number, number],
  pad: Pad,
  roundingMode: Rounding,
  depthwise: boolean,
): Geometry {
  const info = tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    dilations,
    pad,
    roundingMode,
    depthwise,
    'channelsLast',
  );
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    kh: info.filterHeight,
    kw: info.filterWidth,
    sy: info.strideHeight,
    sx: info.strideWidth,
    dy: info.dilationHeight,
    dx: info.dilationWidth,
    top: info.padInfo.top,
    bottom: info.padInfo.bottom,
    left: info.padInfo.left,
    right: info.padInfo.right,
  };
}

/** What filter tap (ky, kx) reads for every output position: [B, outH, outW, C]. */
function tapView(xPadded: tf.Tensor4D, g: Geometry, ky: number, kx: number): tf.Tensor4D {
  const y0 = ky * g.dy;
  const x0 = kx * g.dx;
  // Unit strides are a plain slice (copied straight from the heap; wasm's StridedSlice reads the whole input back first).
  if (g.sy === 1 && g.sx === 1) return tf.slice(xPadded, [0, y0, x0, 0], [g.batch, g.outH, g.outW, xPadded.shape[3]]);
  return tf.stridedSlice(
    xPadded,
    [0, y0, x0, 0],
    [g.batch, y0 + (g.outH - 1) * g.sy + 1, x0 + (g.outW - 1) * g.sx + 1, xPadded.shape[3]],
    [1, g.sy, g.sx, 1],
  ) as tf.Tensor4D;
}

/** x with the forward padding, plus zeros below/right so every tap view is in range. */
function padInput(x: tf.Tensor4D, g: Geometry): tf.Tensor4D {
  const needH = (g.outH - 1) * g.sy + (g.kh - 1) * g.dy + 1;
  const needW = (g.outW - 1) * g.sx + (g.kw - 1) * g.dx + 1;
  const bottom = Math.max(0, needH - g.inH - g.top);
  const right = Math.max(0, needW - g.inW - g.left);
  return tf.pad(x, [[0, 0], [g.top, bottom], [g.left, right], [0, 0]]);
}

/** dL/dW of a convolution: one [inC, n] x [n, outC] matmul per filter tap. */
function conv2dBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: number[], g: Geometry): tf.Tensor4D {
  return tf.tidy(() => {
    const xp = padInput(x, g);
    const n = g.batch * g.outH * g.outW;
    const dy2 = dy.reshape([n, dy.shape[3]]);
    const taps: tf.Tensor[] = [];
    for (let ky = 0; ky < g.kh; ky++) {
      for (let kx = 0; kx < g.kw; kx++) {
        taps.push(tf.matMul(tapView(xp, g, ky, kx).reshape([n, g.inC]), dy2, true, false));
      }
    }
    return tf.stack(taps).reshape(filterShape) as tf.Tensor4D;
  });
}

/** dL/dW of a depthwise convolution (filter [kh, kw, C, m]): a product summed per tap. */
function depthwiseBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: number[], g: Geometry): tf.Tensor4D {
  return tf.tidy(() => {
    const m = filterShape[3];
    const xp = padInput(x, g);
    const dy5 = dy.reshape([g.batch, g.outH, g.outW, g.inC, m]);
    const taps: tf.Tensor[] = [];
    for (let ky = 0; ky < g.kh; ky++) {
      for (let kx = 0; kx < g.kw; kx++) {
        const v = tapView(xp, g, ky, kx).reshape([g.batch, g.outH, g.outW, g.inC, 1]);
        taps.push(v.mul(dy5).sum([0, 1, 2]));
      }
    }
    return tf.stack(taps).reshape(filterShape) as tf.Tensor4D;
  });
}

/**
 * dL/dx of a depthwise convolution. Stride 1 without dilation is a depthwise convolution of dy with
 * the spatially flipped filter; otherwise every tap scatters dy * w back onto the positions it read.
 */
function depthwiseBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: number[], g: Geometry): tf.Tensor4D {
  return tf.tidy(() => {
    const m = filter.shape[3];
    const fast =
      g.sy === 1 && g.sx === 1 && g.dy === 1 && g.dx === 1 && m === 1 &&
      g.top <= g.kh - 1 && g.left <= g.kw - 1 && g.bottom <= g.kh - 1 && g.right <= g.kw - 1;
    if (fast) {
      const flipped = tf.reverse(filter, [0, 1]) as tf.Tensor4D;
      const pad: tf.backend_util.ExplicitPadding = [[0, 0], [g.kh - 1 - g.top, g.kh - 1 - g.bottom], [g.kw - 1 - g.left, g.kw - 1 - g.right], [0, 0]];
      const out = tf.depthwiseConv2d(dy, flipped, 1, pad) as tf.Tensor4D;
      return padOrCrop(out, inputShape);
    }
    const hp = Math.max(g.inH + g.top + g.bottom, (g.outH - 1) * g.sy + (g.kh - 1) * g.dy + 1);
    const wp = Math.max(g.inW + g.left + g.right, (g.outW - 1) * g.sx + (g.kw - 1) * g.dx + 1);
    const dy5 = dy.reshape([g.batch, g.outH, g.outW, g.inC, m]);
    let acc: tf.Tensor4D = tf.zeros([g.batch, hp, wp, g.inC]);
    for (let ky = 0; ky < g.kh; ky++) {
      for (let kx = 0; kx < g.kw; kx++) {
        const w = filter.slice([ky, kx, 0, 0], [1, 1, g.inC, m]).reshape([1, 1, 1, g.inC, m]);
        const contrib = dy5.mul(w).sum(4) as tf.Tensor4D;
        const spread = interleaveZeros(contrib, g.sy, g.sx);
        const y0 = ky * g.dy;
        const x0 = kx * g.dx;
        const placed = tf.pad(spread, [[0, 0], [y0, hp - y0 - spread.shape[1]], [x0, wp - x0 - spread.shape[2]], [0, 0]]);
        const next = acc.add(placed) as tf.Tensor4D;
        acc.dispose();
        acc = next;
      }
    }
    return acc.slice([0, g.top, g.left, 0], [g.batch, g.inH, g.inW, g.inC]);
  });
}

/** Spreads rows and columns apart by the stride, zeros in between. */
function interleaveZeros(x: tf.Tensor4D, sy: number, sx: number): tf.Tensor4D {
  if (sy === 1 && sx === 1) return x.clone();
  const [b, h, w, c] = x.shape;
  const x6 = x.reshape([b, h, 1, w, 1, c]);
  const padded = tf.pad(x6, [[0, 0], [0, 0], [0, sy - 1], [0, 0], [0, sx - 1], [0, 0]]);
  return (padded.reshape([b, h * sy, w * sx, c]) as tf.Tensor4D).slice([0, 0, 0, 0], [b, (h - 1) * sy + 1, (w - 1) * sx + 1, c]);
}

function padOrCrop(x: tf.Tensor4D, shape: number[]): tf.Tensor4D {
  const [, h, w] = shape;
  const padH = Math.max(0, h - x.shape[1]);
  const padW = Math.max(0, w - x.shape[2]);
  const padded = padH || padW ? tf.pad(x, [[0, 0], [0, padH], [0, padW], [0, 0]]) : x;
  return padded.slice([0, 0, 0, 0], [shape[0], h, w, shape[3]]);
}

/**
 * Sums the rows of x into numSegments buckets ([N, ...] -> [numSegments, ...]): the gradient of a
 * gather (embedding lookup). A one-hot [numSegments, N] matrix times x as [N, rest] is one GEMM.
 */
function unsortedSegmentSum(x: tf.Tensor, segmentIds: tf.Tensor, numSegments: number): tf.Tensor {
  return tf.tidy(() => {
    const n = segmentIds.size;
    const rest = x.shape.slice(segmentIds.rank);
    const width = rest.reduce((a, b) => a * b, 1);
    const oneHot = tf.oneHot(segmentIds.reshape([n]).toInt(), numSegments).toFloat();
    const summed = tf.matMul(oneHot, x.reshape([n, width]).toFloat(), true, false);
    return summed.reshape([numSegments, ...rest]).cast(x.dtype);
  });
}

/**
 * The kernel inputs as tensors. The engine hands a kernel the op's own input tensors; they are used
 * as they are and never disposed here (a wrapper made with makeTensorFromTensorInfo would release the
 * caller's data on dispose, since the wasm backend has no incRef).
 */
function withInputs<T>(infos: tf.TensorInfo[], f: (ts: tf.Tensor4D[]) => T): T {
  const ts = infos.map((info) => {
    if (!(info instanceof tf.Tensor)) throw new Error('wasm composite gradient kernel: expected tensor inputs');
    return info as tf.Tensor4D;
  });
  return f(ts);
}

function requireNHWC(kernel: string, attrs: { dataFormat?: string }): void {
  if (attrs.dataFormat && attrs.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} (wasm composite): only NHWC is supported, got ${attrs.dataFormat}`);
  }
}

interface GradAttrs {
  strides: number | [number, number];
  pad: Pad;
  dilations?: number | [number, number];
  dimRoundingMode?: Rounding;
  dataFormat?: string;
  filterShape: number[];
  inputShape: number[];
}

/** Registers the composite gradient kernels on the wasm backend (where it has none of its own). */
export function registerWasmGradKernels(): void {
  const add = (kernelName: string, kernelFunc: tf.KernelFunc) => {
    if (!tf.getKernel(kernelName, 'wasm')) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
  };
  add('Conv2DBackpropFilter', ({ inputs, attrs }) => {
    const a = attrs as unknown as GradAttrs;
    requireNHWC('Conv2DBackpropFilter', a);
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const g = geometry(x.shape, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false);
    return withInputs([x, dy], ([xt, dyt]) => conv2dBackpropFilter(xt, dyt, a.filterShape, g));
  });
  add('DepthwiseConv2dNativeBackpropFilter', ({ inputs, attrs, backend }) => {
    const a = attrs as unknown as GradAttrs;
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const g = geometry(x.shape, a.filterShape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true);
    const heap = x.dtype === 'float32' && dy.dtype === 'float32' && a.filterShape[3] === 1 ? wasmHeap(backend) : null;
    if (heap && g.inC > 0) {
      // One pass of the SIMD kernel (./kernels/wasm/simd) instead of a slice and a sum per tap.
      const dw = heap.alloc(a.filterShape);
      heap.kernels.depthwiseFilterGrad(heap.address(x), heap.address(dy), heap.address(dw), g.batch, g.inH, g.inW, g.outH, g.outW, g.inC, g.kh, g.kw, g.sy, g.sx, g.dy, g.dx, g.top, g.left);
      return dw;
    }
    return withInputs([x, dy], ([xt, dyt]) => depthwiseBackpropFilter(xt, dyt, a.filterShape, g));
  });
  add('UnsortedSegmentSum', ({ inputs, attrs }) => {
    const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
    const { numSegments } = attrs as unknown as { numSegments: number };
    if (!(x instanceof tf.Tensor) || !(segmentIds instanceof tf.Tensor)) {
      throw new Error('wasm composite UnsortedSegmentSum: expected tensor inputs');
    }
    return unsortedSegmentSum(x, segmentIds, numSegments);
  });
  add('DepthwiseConv2dNativeBackpropInput', ({ inputs, attrs }) => {
    const a = attrs as unknown as GradAttrs;
    const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const g = geometry(a.inputShape, filter.shape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true);
    return withInputs([dy, filter], ([dyt, ft]) => depthwiseBackpropInput(dyt, ft, a.inputShape, g));
  });
}
