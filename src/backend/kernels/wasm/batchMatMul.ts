/**
 * `BatchMatMul` on wasm, routed to fast code: tfjs-backend-wasm 4.22's kernel calls XNNPACK's GEMM
 * only for a single matrix pair without transposes; with a transpose flag or a batch it falls back to
 * a scalar loop (~1-4 GFLOP/s against ~40 for the GEMM on two threads). Here:
 *  - where the runtime has relaxed SIMD (fused multiply-add), every float32 product runs in the SIMD
 *    kernel of ./simd (~35-40 GFLOP/s per thread, XNNPACK's 4.22 build reaches ~20 per thread),
 *    split over the helper threads by batch entries or rows; transposed operands are copied to
 *    row-major form by the SIMD transpose first (small left operands are read in place);
 *  - otherwise a batch of small products against a batch of right-hand matrices (the per-head
 *    products of attention: [32, 256, 32] x [32, 32, 32], K^T V as [32, 32, 256] x [32, 256, 32],
 *    ...) runs in the same kernel without fused multiply-adds, one call for the whole batch (K^T V
 *    went from ~10 ms to ~1 ms), and the rest goes to XNNPACK: a batch against one shared matrix
 *    folded into a single GEMM (rows of the batched side stacked: [B*m, k] x [k, n], or columns when
 *    the batched side is on the right), larger distinct pairs one GEMM each, transposes materialised
 *    first (the tiled Transpose of ./transpose).
 * Without wasm SIMD, short wide products stay with the original batched loop.
 */
import * as tf from '@tensorflow/tfjs';
import { Heap, splitRange, wasmHeap } from './heap';
import { PACK_BYTES } from './simd/kernels';
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

/**
 * Without fused multiply-adds (runtimes lacking relaxed SIMD), products per pair (m * k * n
 * multiply-adds) up to which a batch runs in the SIMD kernel (~10-25 GFLOP/s per thread) rather than
 * as one XNNPACK call per pair (~40 GFLOP/s on two threads after ~0.25 ms of per-call set-up,
 * operand splitting and stacking). With them the kernel runs every product (~35-40 GFLOP/s per thread).
 */
const SIMD_MAX_PAIR_MACS = 1 << 22;
/** Products (per pair) small enough to read a transposed left operand in place. */
const SMALL_PAIR_MACS = 1 << 16;
/** Multiply-adds below which a product stays on the calling thread (waking a helper costs ~20-50 us). */
const MIN_SPLIT_MACS = 1 << 20;

/**
 * The product in the SIMD kernels, or null where they should not take it. They take it where neither
 * batch broadcasts partially (each is the full output batch or a single matrix), and either fused
 * multiply-adds are available (every size) or the right side is batched and each product small.
 * Transposed operands are first transposed into scratch space (contiguous rows keep the kernel at its
 * fast form), except a small transposed left operand, read with strides, and products with fewer than
 * 4 columns, which use the dot-product form. Large products are split over the helper threads by batch
 * entries or, for a single product, by rows.
 */
function simdBatchMatMul(heap: Heap, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): tf.TensorInfo | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const outBatch = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
  const [nA, nB, nOut] = [product(batchA), product(batchB), product(outBatch)];
  const [m, k] = transposeA ? [a.shape[a.shape.length - 1], a.shape[a.shape.length - 2]] : a.shape.slice(-2);
  const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
  if ((nA !== 1 && nA !== nOut) || (nB !== 1 && nB !== nOut)) return null;
  if (!heap.fusedMultiplyAdd && (nB === 1 || m * k * n > SIMD_MAX_PAIR_MACS)) return null;
  if (m * n * k === 0) return null;
  const out = heap.alloc([...outBatch, m, n]);
  const outAddr = heap.address(out);
  const strideA = nA > 1 ? 4 * m * k : 0;
  const strideB = nB > 1 ? 4 * k * n : 0;
  const split = nOut * m * k * n >= MIN_SPLIT_MACS ? heap.threads : 1;
  if (transposeB && n < 4 && !transposeA) {
    const parts = splitRange(nOut, split, 1).map(([i, count]) => [heap.address(a) + i * strideA, heap.address(b) + i * strideB, outAddr + 4 * i * m * n, 1, count, m, k, n, 0, strideA, 4 * k, 0, strideB, 4 * k, 0, 4 * m * n, 4 * n]);
    heap.runParts('bmmDot', parts);
    return out;
  }
  // Transposed operands are copied to row-major form first: reading a transposed left operand in
  // place (column by column) ran ~1.4x slower than the copy plus the product, once it is large.
  const copyA = transposeA && (!heap.fusedMultiplyAdd || m * k * n > SMALL_PAIR_MACS) ? heap.alloc([nA, m, k]) : null;
  const copyB = transposeB ? heap.alloc([nB, k, n]) : null;
  const packs = heap.alloc([split, PACK_BYTES / 4]);
  try {
    if (copyA) heap.kernels.transpose(heap.address(a), heap.address(copyA), nA, k, m);
    if (copyB) heap.kernels.transpose(heap.address(b), heap.address(copyB), nB, n, k);
    const aAddr = heap.address(copyA ?? a);
    const bAddr = heap.address(copyB ?? b);
    const [sAm, sAk] = transposeA && !copyA ? [4, 4 * m] : [4 * k, 4];
    // A batch of untransposed left matrices against one right matrix is one taller matrix.
    const [rows, batch] = nB === 1 && nA > 1 && sAk === 4 ? [nA * m, 1] : [m, nOut];
    const packAddr = heap.address(packs);
    // One part: batch entries i .. i+count, rows r .. r+rowCount of each, its own pack.
    const part = (i: number, count: number, r: number, rowCount: number, p: number) => [
      aAddr + i * strideA + r * sAm, bAddr + i * strideB, outAddr + 4 * (i * m + r) * n, 1, count, rowCount, k, n,
      0, strideA, sAm, sAk, 0, strideB, 4 * n, 0, 4 * m * n, 4 * n, packAddr + p * PACK_BYTES,
    ];
    const parts = batch >= split
      ? splitRange(batch, split, 1).map(([i, count], p) => part(i, count, 0, rows, p))
      : splitRange(rows, split, 2).map(([r, count], p) => part(0, batch, r, count, p));
    heap.runParts('bmmAxpy', parts);
  } finally {
    heap.free(packs);
    if (copyA) heap.free(copyA);
    if (copyB) heap.free(copyB);
  }
  return out;
}

/** Replaces wasm's `BatchMatMul` by the routing above (its own kernel runs what the SIMD kernels leave). */
export function registerWasmBatchMatMul(): void {
  wrapWasmKernel(KERNEL, (original: OriginalKernel) => (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const heap = wasmHeap(args.backend);
    const simd = heap && simdBatchMatMul(heap, a, b, transposeA, transposeB);
    if (simd) return simd;
    const nA = product(a.shape.slice(0, -2));
    const nB = product(b.shape.slice(0, -2));
    const [m, k] = a.shape.slice(-2);
    // Untransposed: the original kernel is fast for one pair, and for a batch of short products.
    const batched = nA > 1 || nB > 1;
    if (!transposeA && !transposeB && (!batched || (nA > 1 && nB > 1 && m < k))) return original(args);
    return batchMatMul(asTensor(a, KERNEL), asTensor(b, KERNEL), transposeA, transposeB);
  });
}
