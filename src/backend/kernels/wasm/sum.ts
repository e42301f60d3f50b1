/**
 * `Sum` over leading or middle axes on wasm as an average pool: tfjs-backend-wasm 4.22 sums those in a
 * scalar loop after a transpose, which for the bias and norm gradients of a training step ([1024, 256]
 * -> [256], [4, 16, 16, 1280] -> [1280], [4, 256, 256] -> [4, 256]) took 1-15 ms. XNNPACK's average pooling over a window covering
 * all rows, times the row count, took ~1 ms for the largest of them. (A GEMM with a row of ones was
 * no faster: XNNPACK repacks its right operand on every call, and the transpose needed to put the data
 * on the left is a slow copy.) Other reductions keep the original kernel. The pool adds in its own
 * order (float32 rounding differs accordingly).
 */
import * as tf from '@tensorflow/tfjs';
import { OriginalKernel, asTensor, wrapWasmKernel } from './replace';

/** Rows of data (product of the reduced leading axes) below which the loop is left alone. */
const MIN_ROWS = 16;

/** rows = h * w with h the largest divisor not above sqrt(rows): a compact pooling window. */
function window(rows: number): [number, number] {
  for (let h = Math.floor(Math.sqrt(rows)); h > 1; h--) if (rows % h === 0) return [h, rows / h];
  return [1, rows];
}

export function registerWasmSum(): void {
  wrapWasmKernel('Sum', (original: OriginalKernel) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
    // A contiguous block of reduced axes with at least one kept axis after it: [pre, rows, cols] summed
    // over rows, one pooling window per leading index (e.g. [B, N, D] -> [B, D]).
    const first = axes[0];
    const last = axes[axes.length - 1];
    const block = axes.length > 0 && last < x.shape.length - 1 && axes.every((a, i) => a === first + i);
    const size = (dims: number[]) => dims.reduce((p, d) => p * d, 1);
    const rows = size(axes.map((a) => x.shape[a]));
    if (x.dtype !== 'float32' || !block || rows < MIN_ROWS) return original(args);
    const pre = size(x.shape.slice(0, first));
    const cols = size(x.shape.slice(last + 1));
    const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    const [h, w] = window(rows);
    return tf.tidy(() => {
      const image = asTensor(x, 'Sum').reshape([pre, h, w, cols]) as tf.Tensor4D;
      return tf.avgPool(image, [h, w], 1, 'valid').mul(rows).reshape(outShape);
    });
  });
}
