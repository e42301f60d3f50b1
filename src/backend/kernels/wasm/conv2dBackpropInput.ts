/**
 * `Conv2DBackpropInput` (dL/dx of a convolution, also `conv2dTranspose`) on wasm as a forward
 * convolution, which wasm runs through XNNPACK (~4 GFLOP/s for its own backprop kernel). With
 * forward out[o] = sum_k x[o*s + k - top] w[k]:
 *
 *   dx[i] = sum_k dyz[i + top - k] w[k],   dyz = dy with s - 1 zeros between neighbours,
 *
 * a 'valid' correlation of dyz, padded by kh - 1 - top in front, with the spatially flipped filter
 * whose in/out channels are swapped. NHWC without dilation (tfjs has no dilated conv gradient); other
 * cases, and paddings wider than the filter, stay with the original kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { OriginalKernel, asTensor, wrapWasmKernel } from './replace';

const KERNEL = 'Conv2DBackpropInput';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

interface Attrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: string;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

/** Spreads rows and columns of x apart by the strides, zeros in between: [B, (h-1)*sy+1, (w-1)*sx+1, C]. */
function dilateWithZeros(x: tf.Tensor4D, sy: number, sx: number): tf.Tensor4D {
  if (sy === 1 && sx === 1) return x;
  const [b, h, w, c] = x.shape;
  const x6 = x.reshape([b, h, 1, w, 1, c]);
  const spread = tf.pad(x6, [[0, 0], [0, 0], [0, sy - 1], [0, 0], [0, sx - 1], [0, 0]]).reshape([b, h * sy, w * sx, c]) as tf.Tensor4D;
  return spread.slice([0, 0, 0, 0], [b, (h - 1) * sy + 1, (w - 1) * sx + 1, c]);
}

/** Leading and trailing amounts so a 'valid' k-tap correlation of a length-n signal gives `size` outputs. */
function sides(front: number, k: number, n: number, size: number): [number, number] {
  const before = k - 1 - front;
  return [before, size + k - 1 - before - n];
}

function backpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  return tf.tidy(() => {
    const { inHeight, inWidth, filterHeight: kh, filterWidth: kw, strideHeight: sy, strideWidth: sx, padInfo } = info;
    const dyz = dilateWithZeros(dy, sy, sx); // [B, h', w', outC]
    const [top, bottom] = sides(padInfo.top, kh, dyz.shape[1], inHeight);
    const [left, right] = sides(padInfo.left, kw, dyz.shape[2], inWidth);
    // A negative trailing amount means the last rows of dy reach no input position: crop them.
    const cropped = dyz.slice([0, 0, 0, 0], [-1, dyz.shape[1] + Math.min(0, bottom), dyz.shape[2] + Math.min(0, right), -1]);
    const padded = tf.pad(cropped, [[0, 0], [top, Math.max(0, bottom)], [left, Math.max(0, right)], [0, 0]]);
    const flipped = tf.reverse(filter, [0, 1]).transpose([0, 1, 3, 2]) as tf.Tensor4D; // [kh, kw, outC, inC]
    return tf.conv2d(padded, flipped, 1, 'valid');
  });
}

/** Replaces wasm's `Conv2DBackpropInput` by the forward-convolution form where it applies. */
export function registerWasmConv2DBackpropInput(): void {
  wrapWasmKernel(KERNEL, (original: OriginalKernel) => (args) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const a = args.attrs as unknown as Attrs;
    if (a.dataFormat && a.dataFormat !== 'NHWC') return original(args);
    const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    if (info.padInfo.top > info.filterHeight - 1 || info.padInfo.left > info.filterWidth - 1) return original(args);
    return backpropInput(asTensor<tf.Tensor4D>(dy, KERNEL), asTensor<tf.Tensor4D>(filter, KERNEL), info);
  });
}
