/**
 * `BatchMatMul` on wasm, routed to the one fast case of tfjs-backend-wasm 4.22: its kernel calls
 * XNNPACK's GEMM only for a single matrix pair without transposes; with a transpose flag or a batch it
 * falls back to a scalar loop (~1-4 GFLOP/s against ~80 for the GEMM). Here:
 *  - transposes are materialised first (the wasm Transpose kernel is a fast copy);
 *  - a batch against one shared matrix is folded into a single GEMM (rows of the batched side are
 *    stacked: [B*m, k] x [k, n], or columns when the batched side is on the right);
 *  - a batch of distinct pairs runs one GEMM per pair when each product has at least as many rows as
 *    its inner size (measured 10-25x faster for [32, 256, 32] x [32, 32, 32] and [4, 256, 256]^2);
 *    short wide products ([32, 32, 256] x [32, 256, 32], a per-head K^T V) stay with the original
 *    batched loop, which was faster there.
 * Sums are reordered only inside the GEMM.
 */
import * as tf from '@tensorflow/tfjs';
import { OriginalKernel, asTensor, wrapWasmKernel } from './replace';

const KERNEL = 'BatchMatMul';

function product(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** [..., r, c] -> [n, r, c] (or [n, c, r] when transposed): n matrices in row-major, untransposed. */
function asMatrices(x: tf.Tensor, n: number, transpose: boolean): tf.Tensor3D {
  const [r, c] = x.shape.slice(-2);
  const x3 = x.reshape([n, r, c]) as tf.Tensor3D;
  return transpose ? (x3.transpose([0, 2, 1]) as tf.Tensor3D) : x3;
}

/**
 * a: [...batchA, m, k] (or [..., k, m] with transposeA), b: [...batchB, k, n] (or [..., n, k]); batch
 * dimensions broadcast. Returns [...broadcast batch, m, n].
 */
function batchMatMul(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  return tf.tidy(() => {
    const batchA = a.shape.slice(0, -2);
    const batchB = b.shape.slice(0, -2);
    const outBatch = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
    let nA = product(batchA);
    let nB = product(batchB);
    const nOut = product(outBatch);
    // Broadcasting between two real batches (e.g. [2, 1] against [1, 3]): tile both to the full batch.
    if (nA > 1 && nB > 1 && (nA !== nOut || nB !== nOut)) {
      a = tf.broadcastTo(a, [...outBatch, ...a.shape.slice(-2)]);
      b = tf.broadcastTo(b, [...outBatch, ...b.shape.slice(-2)]);
      nA = nB = nOut;
    }
    const am = asMatrices(a, nA, transposeA); // [nA, m, k]
    const bm = asMatrices(b, nB, transposeB); // [nB, k, n]
    const [, m, k] = am.shape;
    const n = bm.shape[2];
    let out: tf.Tensor; // [nOut, m, n]
    if (nB === 1) {
      out = tf.matMul(am.reshape([nA * m, k]), bm.reshape([k, n]));
    } else if (nA === 1) {
      // a [m, k] times every b: one GEMM against the batch laid side by side as columns.
      const bCols = bm.transpose([1, 0, 2]).reshape([k, nB * n]); // [k, nB*n]
      out = tf.matMul(am.reshape([m, k]), bCols).reshape([m, nB, n]).transpose([1, 0, 2]);
    } else if (m >= k) {
      const as = tf.unstack(am);
      const bs = tf.unstack(bm);
      out = tf.stack(as.map((ai, i) => tf.matMul(ai, bs[i]))); // one fast GEMM per pair
    } else {
      out = tf.matMul(am, bm); // untransposed batch of short products: the original kernel
    }
    return out.reshape([...outBatch, m, n]);
  });
}

/** Replaces wasm's `BatchMatMul` by the routing above (its own kernel still runs every GEMM). */
export function registerWasmBatchMatMul(): void {
  wrapWasmKernel(KERNEL, (original: OriginalKernel) => (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const nA = product(a.shape.slice(0, -2));
    const nB = product(b.shape.slice(0, -2));
    const [m, k] = a.shape.slice(-2);
    // Untransposed: the original kernel is fast for one pair, and for a batch of short products.
    const batched = nA > 1 || nB > 1;
    if (!transposeA && !transposeB && (!batched || (nA > 1 && nB > 1 && m < k))) return original(args);
    return batchMatMul(asTensor(a, KERNEL), asTensor(b, KERNEL), transposeA, transposeB);
  });
}
