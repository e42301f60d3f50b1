/**
 * Hand-written SIMD kernels that run on the wasm backend's own heap (they import its memory, so no
 * tensor is copied in or out): the few operations tfjs-backend-wasm 4.22 runs as scalar loops that a
 * training step of the DiT spends much of its time in.
 *
 *  - `transpose`: a batch of matrix transposes in 16 x 16 tiles. The stock kernel walks the output
 *    in order and reads the input a row apart each time ([1024, 1280] took 11 ms).
 *  - `depthwiseFilterGrad`: the filter gradient of a depthwise convolution (channel multiplier 1), which
 *    the wasm backend lacks; composed from shifted slices and sums it took ~20 ms for the [4, 16, 16,
 *    1280] 3 x 3 convolution of a DiT block.
 *  - `bmmAxpy` / `bmmDot`: batches of small matrix products with arbitrary strides, so the per-head
 *    products of attention ([4, 8] batches of [256, 32] x [32, 32], K^T V over 256 tokens, ...) run
 *    on the layout they come in, transposed or not. XNNPACK (the fast GEMM) takes one untransposed
 *    pair per call and repacks its right operand every time, which costs more than these products.
 *
 * All run single-threaded on the calling thread. Products sum in a different order from the scalar
 * kernels (four partial sums in `bmmDot`), so float32 results differ in rounding.
 */
import { FunctionBuilder, assembleModule } from './assembler';

const c = (n: number) => ({ c: n });
/** Source rows per band of the transpose: its 4 x 4 blocks then fill whole 64-byte output lines. */
const BAND = 16;
/**
 * Terms of a product summed per pass over a column strip: the strip of B they read (256 rows x 64
 * bytes) stays in the L1 cache while every row tile of A passes; longer sums (1024 tokens in a weight
 * gradient) add further passes into C.
 */
const K_BLOCK = 256;
/**
 * Rows of A per block: its K_BLOCK-term slices (128 x 1 KB) stay in the L2 cache while every column
 * strip of B passes over them, instead of all of A streaming in again for each strip.
 */
const M_BLOCK = 128;
/** Bytes of scratch space `bmmAxpy` needs per call (per thread): one packed block of a column strip. */
export const PACK_BYTES = K_BLOCK * 64;

/**
 * transpose(src, dst, batch, rows, cols): dst[b][j][i] = src[b][i][j] for 32-bit elements (byte
 * addresses). 4 x 4 blocks move as four vector loads, eight shuffles and four vector stores; the
 * rows and columns past a multiple of 4 move one element at a time.
 */
function transposeKernel(): FunctionBuilder {
  const f = new FunctionBuilder('transpose', 5);
  const [src, dst, batch, rows, cols] = [0, 1, 2, 3, 4];
  const [b, r0, r, j, bandEnd, rows4, cols4, rowBytes, colBytes, matrix, s, d] = Array.from({ length: 12 }, () => f.i32());
  const [x0, x1, x2, x3, t0, t1, t2, t3] = Array.from({ length: 8 }, () => f.v128());
  f.get(rows).const(-4).and().set(rows4);
  f.get(cols).const(-4).and().set(cols4);
  f.get(cols).const(2).shl().set(rowBytes); // one source row
  f.get(rows).const(2).shl().set(colBytes); // one output row
  f.get(rows).get(cols).mul().const(2).shl().set(matrix);
  const element = (row: number, col: number) => {
    f.get(dst).get(col).get(rows).mul().get(row).add().const(2).shl().add(); // &dst[col][row]
    f.get(src).get(row).get(cols).mul().get(col).add().const(2).shl().add().i32Load().i32Store();
  };
  f.for(b, c(0), batch, c(1), () => {
    f.for(r0, c(0), rows4, c(BAND), () => {
      f.get(r0).const(BAND).add().get(rows4).get(r0).const(BAND).add().get(rows4).ltU().select().set(bandEnd);
      f.for(j, c(0), cols4, c(4), () => {
        f.for(r, r0, bandEnd, c(4), () => {
          f.get(src).get(r).get(cols).mul().get(j).add().const(2).shl().add().set(s);
          for (const [k, x] of [x0, x1, x2, x3].entries()) {
            f.get(s).v128Load().set(x);
            if (k < 3) f.inc(s, rowBytes);
          }
          f.get(x0).get(x1).f32x4Shuffle([0, 4, 1, 5]).set(t0);
          f.get(x0).get(x1).f32x4Shuffle([2, 6, 3, 7]).set(t1);
          f.get(x2).get(x3).f32x4Shuffle([0, 4, 1, 5]).set(t2);
          f.get(x2).get(x3).f32x4Shuffle([2, 6, 3, 7]).set(t3);
          f.get(dst).get(j).get(rows).mul().get(r).add().const(2).shl().add().set(d);
          const columns: Array<[number, number, [number, number, number, number]]> = [[t0, t2, [0, 1, 4, 5]], [t0, t2, [2, 3, 6, 7]], [t1, t3, [0, 1, 4, 5]], [t1, t3, [2, 3, 6, 7]]];
          for (const [k, [p, q, lanes]] of columns.entries()) {
            f.get(d).get(p).get(q).f32x4Shuffle(lanes).v128Store();
            if (k < 3) f.inc(d, colBytes);
          }
        });
      });
    });
    f.for(r, c(0), rows, c(1), () => void f.for(j, cols4, cols, c(1), () => element(r, j)));
    f.for(r, rows4, rows, c(1), () => void f.for(j, c(0), cols4, c(1), () => element(r, j)));
    f.inc(src, matrix).inc(dst, matrix);
  });
  return f;
}

/** acc += x * y on f32x4 locals: one fused instruction where `fma`, else a multiply and an add. */
function multiplyAdd(f: FunctionBuilder, fma: boolean, acc: number, x: number, y: number): void {
  if (fma) f.get(x).get(y).get(acc).f32x4RelaxedMadd().set(acc);
  else f.get(acc).get(x).get(y).f32x4Mul().f32x4Add().set(acc);
}

/**
 * Shared prologue of the batched products: the two batch loops (outer, inner), each operand's base
 * address advanced by its byte strides; `body(aBase, bBase, cBase)` runs once per product.
 */
function batchLoops(f: FunctionBuilder, p: { a: number; b: number; c: number; outer: number; inner: number; sA: [number, number]; sB: [number, number]; sC: [number, number] }, body: (aB: number, bB: number, cB: number) => void): void {
  const [i1, i2, a1, b1, c1, aB, bB, cB] = [f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32()];
  f.get(p.a).set(a1).get(p.b).set(b1).get(p.c).set(c1);
  f.for(i1, c(0), p.outer, c(1), () => {
    f.get(a1).set(aB).get(b1).set(bB).get(c1).set(cB);
    f.for(i2, c(0), p.inner, c(1), () => {
      body(aB, bB, cB);
      f.inc(aB, p.sA[1]).inc(bB, p.sB[1]).inc(cB, p.sC[1]);
    });
    f.inc(a1, p.sA[0]).inc(b1, p.sB[0]).inc(c1, p.sC[0]);
  });
}

/**
 * bmmAxpy(a, b, c, outer, inner, M, K, N, sA1, sA2, sAm, sAk, sB1, sB2, sBk, sC1, sC2, sCm, pack):
 * C[m, n] = sum_k A[m, k] B[k, n] for every (outer, inner) batch index, strides in bytes, B's and
 * C's rows contiguous. The output is computed in tiles of 2 rows x 16 columns held in registers
 * (A[m, k] broadcast times four vectors of B's row k), then 1-row and 4-column tiles for the edges,
 * and single columns past a multiple of 4. `pack` is scratch space of PACK_BYTES (one per thread):
 * each 16-column strip of B is copied there, K_BLOCK rows at a time, as contiguous 64-byte rows. Read
 * in place, rows a power-of-two multiple of 4 KB apart all fall into the same few cache sets and
 * evict each other ([1024 x 1024] products ran at half speed, and no faster on two threads).
 */
function bmmAxpyKernel(fma: boolean): FunctionBuilder {
  const f = new FunctionBuilder('bmmAxpy', 19);
  const [a, b, cc, outer, inner, M, K, N, sA1, sA2, sAm, sAk, sB1, sB2, sBk, sC1, sC2, sCm, pack] = Array.from({ length: 19 }, (_, i) => i);
  const [m, n, k, m2, n16, n4, ap0, ap1, bp, cp, cp1, k0, kEnd, kPasses, mb, mEnd, q, src] = Array.from({ length: 18 }, () => f.i32());
  const acc = Array.from({ length: 8 }, () => f.v128());
  const bv = Array.from({ length: 4 }, () => f.v128());
  const [a0, a1] = [f.v128(), f.v128()];
  const s = f.f32();
  f.get(N).const(-16).and().set(n16);
  f.get(N).const(-4).and().set(n4);
  f.get(K).const(1).get(K).select().set(kPasses);
  /** C[m .. m+rows, n .. n+4*vecs] += the terms k0 .. kEnd (set rather than added when k0 is 0). */
  const tile = (aB: number, bB: number, cB: number, rows: 1 | 2, vecs: 1 | 4) => {
    f.get(cB).get(m).get(sCm).mul().add().get(n).const(2).shl().add().tee(cp).get(sCm).add().set(cp1);
    for (let i = 0; i < rows * vecs; i++) f.v128Zero().set(acc[i]);
    f.get(k0).when(() => {
      for (let r = 0; r < rows; r++) for (let v = 0; v < vecs; v++) f.get(r === 0 ? cp : cp1).v128Load(16 * v).set(acc[r * vecs + v]);
    });
    f.get(aB).get(m).get(sAm).mul().add().get(k0).get(sAk).mul().add().tee(ap0).get(sAm).add().set(ap1);
    if (vecs === 4) f.get(pack).set(bp);
    else f.get(bB).get(n).const(2).shl().add().get(k0).get(sBk).mul().add().set(bp);
    const bStep = vecs === 4 ? c(64) : sBk;
    f.for(k, k0, kEnd, c(1), () => {
      for (let v = 0; v < vecs; v++) f.get(bp).v128Load(16 * v).set(bv[v]);
      f.get(ap0).f32Load().f32x4Splat().set(a0);
      if (rows === 2) f.get(ap1).f32Load().f32x4Splat().set(a1);
      for (let r = 0; r < rows; r++) {
        for (let v = 0; v < vecs; v++) multiplyAdd(f, fma, acc[r * vecs + v], r === 0 ? a0 : a1, bv[v]);
      }
      f.inc(ap0, sAk).inc(ap1, sAk).inc(bp, bStep);
    });
    for (let r = 0; r < rows; r++) for (let v = 0; v < vecs; v++) f.get(r === 0 ? cp : cp1).get(acc[r * vecs + v]).v128Store(16 * v);
  };
  batchLoops(f, { a, b, c: cc, outer, inner, sA: [sA1, sA2], sB: [sB1, sB2], sC: [sC1, sC2] }, (aB, bB, cB) => {
    f.for(mb, c(0), M, c(M_BLOCK), () => {
      f.get(mb).const(M_BLOCK).add().get(M).get(mb).const(M_BLOCK).add().get(M).ltU().select().tee(mEnd);
      f.get(mb).sub().const(-2).and().get(mb).add().set(m2);
      for (const [from, to, step, vecs] of [[null, n16, 16, 4], [n16, n4, 4, 1]] as const) {
        f.for(n, from === null ? c(0) : from, to, c(step), () => {
          // At least one pass, so that K = 0 writes zeros.
          f.for(k0, c(0), kPasses, c(K_BLOCK), () => {
            f.get(k0).const(K_BLOCK).add().get(K).get(k0).const(K_BLOCK).add().get(K).ltU().select().set(kEnd);
            if (vecs === 4) {
              // Rows k0 .. kEnd of the strip into the pack, 64 bytes each.
              f.get(bB).get(n).const(2).shl().add().get(k0).get(sBk).mul().add().set(src);
              f.get(pack).set(q);
              f.for(k, k0, kEnd, c(1), () => {
                for (let v = 0; v < 4; v++) f.get(q).get(src).v128Load(16 * v).v128Store(16 * v);
                f.inc(q, c(64)).inc(src, sBk);
              });
            }
            f.for(m, mb, m2, c(2), () => tile(aB, bB, cB, 2, vecs));
            f.for(m, m2, mEnd, c(1), () => tile(aB, bB, cB, 1, vecs));
          });
        });
      }
    });
    // Columns past the last multiple of 4, one dot product each.
    f.for(n, n4, N, c(1), () => {
      f.for(m, c(0), M, c(1), () => {
        f.f32Zero().set(s);
        f.get(aB).get(m).get(sAm).mul().add().set(ap0);
        f.get(bB).get(n).const(2).shl().add().set(bp);
        f.for(k, c(0), K, c(1), () => {
          f.get(s).get(ap0).f32Load().get(bp).f32Load().f32Mul().f32Add().set(s);
          f.inc(ap0, sAk).inc(bp, sBk);
        });
        f.get(cB).get(m).get(sCm).mul().add().get(n).const(2).shl().add().get(s).f32Store();
      });
    });
  });
  return f;
}

/**
 * bmmDot(a, b, c, outer, inner, M, K, N, sA1, sA2, sAm, sB1, sB2, sBn, sC1, sC2, sCm):
 * C[m, n] = dot(A[m, :], B[n, :]) (B given transposed), strides in bytes, A's and B's rows and C's
 * rows contiguous. Four partial sums over k, added at the end.
 */
function bmmDotKernel(fma: boolean): FunctionBuilder {
  const f = new FunctionBuilder('bmmDot', 17);
  const [a, b, cc, outer, inner, M, K, N, sA1, sA2, sAm, sB1, sB2, sBn, sC1, sC2, sCm] = Array.from({ length: 17 }, (_, i) => i);
  const [m, n, q, r, ap, bp, cp, end4, end, k4, kb] = [f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32()];
  const acc = f.v128();
  const s = f.f32();
  f.get(K).const(2).shrU().const(4).shl().set(k4);
  f.get(K).const(2).shl().set(kb);
  batchLoops(f, { a, b, c: cc, outer, inner, sA: [sA1, sA2], sB: [sB1, sB2], sC: [sC1, sC2] }, (aB, bB, cB) => {
    f.for(m, c(0), M, c(1), () => {
      f.get(aB).get(m).get(sAm).mul().add().set(ap);
      f.get(cB).get(m).get(sCm).mul().add().set(cp);
      f.get(ap).get(k4).add().set(end4);
      f.get(ap).get(kb).add().set(end);
      f.get(bB).set(bp);
      f.for(n, c(0), N, c(1), () => {
        f.v128Zero().set(acc);
        f.get(bp).set(r);
        f.for(q, ap, end4, c(16), () => {
          f.get(q).v128Load().get(r).v128Load();
          if (fma) f.get(acc).f32x4RelaxedMadd().set(acc);
          else f.f32x4Mul().get(acc).f32x4Add().set(acc);
          f.inc(r, c(16));
        });
        f.get(acc).f32x4Lane(0).get(acc).f32x4Lane(1).f32Add().get(acc).f32x4Lane(2).get(acc).f32x4Lane(3).f32Add().f32Add().set(s);
        f.for(q, end4, end, c(4), () => {
          f.get(s).get(q).f32Load().get(r).f32Load().f32Mul().f32Add().set(s);
          f.inc(r, c(4));
        });
        f.get(cp).get(s).f32Store();
        f.inc(cp, c(4)).inc(bp, sBn);
      });
    });
  });
  return f;
}

/**
 * depthwiseFilterGrad(x, dy, dw, batch, inH, inW, outH, outW, channels, kH, kW, strideH, strideW,
 * dilationH, dilationW, padTop, padLeft): dw[ky][kx][c] = sum over b, oy, ox of
 * x[b][oy*strideH + ky*dilationH - padTop][ox*strideW + kx*dilationW - padLeft][c] * dy[b][oy][ox][c]
 * (NHWC, taps outside the input contribute nothing). Per output pixel and tap, one row of channels is
 * multiplied and added into the tap's row of dw, four channels at a time; dw (taps x channels) stays
 * in cache while the input and gradient stream through once.
 */
function depthwiseFilterGradKernel(): FunctionBuilder {
  const f = new FunctionBuilder('depthwiseFilterGrad', 17);
  const [x, dy, dw, batch, inH, inW, outH, outW, C, kH, kW, strideH, strideW, dilH, dilW, padT, padL] = Array.from({ length: 17 }, (_, i) => i);
  const [b, oy, ox, ky, kx, iy, ix, dyRow, xRow, wRow, q, d, end, end4, rowBytes, dwEnd] = Array.from({ length: 16 }, () => f.i32());
  const multiplyAdd = (step: 4 | 16) => {
    // dw[tap][q] += x[q] * dy[q], with q advancing through the tap's row; d and the x row follow.
    if (step === 16) f.get(q).get(q).v128Load().get(xRow).v128Load().get(d).v128Load().f32x4Mul().f32x4Add().v128Store();
    else f.get(q).get(q).f32Load().get(xRow).f32Load().get(d).f32Load().f32Mul().f32Add().f32Store();
    f.inc(xRow, c(step)).inc(d, c(step));
  };
  f.get(C).const(2).shl().set(rowBytes);
  f.get(dw).get(kH).get(kW).mul().get(rowBytes).mul().add().set(dwEnd);
  f.for(q, dw, dwEnd, c(4), () => void f.get(q).f32Zero().f32Store());
  f.get(dy).set(dyRow);
  f.for(b, c(0), batch, c(1), () => {
    f.for(oy, c(0), outH, c(1), () => {
      f.for(ox, c(0), outW, c(1), () => {
        f.for(ky, c(0), kH, c(1), () => {
          f.get(oy).get(strideH).mul().get(ky).get(dilH).mul().add().get(padT).sub().set(iy);
          // A negative row reads as a large unsigned number: one compare checks both ends.
          f.get(iy).get(inH).ltU().when(() => {
            f.for(kx, c(0), kW, c(1), () => {
              f.get(ox).get(strideW).mul().get(kx).get(dilW).mul().add().get(padL).sub().set(ix);
              f.get(ix).get(inW).ltU().when(() => {
                f.get(x).get(b).get(inH).mul().get(iy).add().get(inW).mul().get(ix).add().get(rowBytes).mul().add().set(xRow);
                f.get(dw).get(ky).get(kW).mul().get(kx).add().get(rowBytes).mul().add().tee(wRow).get(rowBytes).add().set(end);
                f.get(wRow).get(C).const(2).shrU().const(4).shl().add().set(end4);
                f.get(dyRow).set(d);
                f.for(q, wRow, end4, c(16), () => multiplyAdd(16));
                f.for(q, end4, end, c(4), () => multiplyAdd(4));
              });
            });
          });
        });
        f.inc(dyRow, rowBytes);
      });
    });
  });
  return f;
}

/**
 * adamW(w, m, v, g, wOut, mOut, vOut, count, lerpFromG, decay, lerpScale, beta2, oneMinusBeta2,
 * sqrtBc2, eps, negStep): one AdamW step over `count` float32 values in one pass (four at a time, then
 * the rest one by one), each value by the element-wise rule's operations in its order, so that the
 * results are the same to the bit:
 *   m' = (lerpFromG ? g : m) + (g - m) * lerpScale        (torch's lerp towards g)
 *   v' = v * beta2 + (g * oneMinusBeta2) * g
 *   w' = w * decay + (m' * negStep) / (sqrt(v') / sqrtBc2 + eps)
 * The f32 arguments arrive as their bits (i32); lerpFromG is 0 or 1. Outputs may not overlap inputs
 * other than their own (wOut = w is fine).
 */
function adamWKernel(): FunctionBuilder {
  const f = new FunctionBuilder('adamW', 16);
  const [w, m, v, g, wo, mo, vo, count, fromG, ...bits] = Array.from({ length: 16 }, (_, i) => i);
  const [i, end4, end] = [f.i32(), f.i32(), f.i32()];
  const scalars = bits.map(() => f.f32()); // decay, lerpScale, beta2, oneMinusBeta2, sqrtBc2, eps, negStep
  const splats = bits.map(() => f.v128());
  bits.forEach((b, k) => {
    f.get(b).f32FromBits().tee(scalars[k]).f32x4Splat().set(splats[k]);
  });
  const [gv, mv, mNew, vNew] = [f.v128(), f.v128(), f.v128(), f.v128()];
  const [gs, ms, mNs, vNs] = [f.f32(), f.f32(), f.f32(), f.f32()];
  f.get(count).const(2).shl().set(end);
  f.get(count).const(-4).and().const(2).shl().set(end4);
  const pass = (vector: boolean) => {
    const [load, store, add, sub, mul, div, sqrt] = vector
      ? [() => f.v128Load(), () => f.v128Store(), () => f.f32x4Add(), () => f.f32x4Sub(), () => f.f32x4Mul(), () => f.f32x4Div(), () => f.f32x4Sqrt()]
      : [() => f.f32Load(), () => f.f32Store(), () => f.f32Add(), () => f.f32Sub(), () => f.f32Mul(), () => f.f32Div(), () => f.f32Sqrt()];
    const [decay, scale, beta2, omb2, sqrtBc2, eps, negStep] = vector ? splats : scalars;
    const [gx, mx, mN, vN] = vector ? [gv, mv, mNew, vNew] : [gs, ms, mNs, vNs];
    const at = (base: number) => f.get(base).get(i).add();
    at(g); load(); f.set(gx);
    at(m); load(); f.set(mx);
    f.get(gx).get(mx).get(fromG).select().get(gx).get(mx);
    sub(); f.get(scale); mul(); add(); f.set(mN);
    at(mo); f.get(mN); store();
    at(v); load(); f.get(beta2); mul(); f.get(gx).get(omb2); mul(); f.get(gx); mul(); add(); f.set(vN);
    at(vo); f.get(vN); store();
    at(wo);
    at(w); load(); f.get(decay); mul();
    f.get(mN).get(negStep); mul(); f.get(vN); sqrt(); f.get(sqrtBc2); div(); f.get(eps); add(); div();
    add(); store();
  };
  f.for(i, c(0), end4, c(16), () => pass(true));
  f.for(i, end4, end, c(4), () => pass(false));
  return f;
}

/** A WebAssembly.Memory (the type libraries this package compiles with do not declare the WebAssembly API). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}

/** The part of the WebAssembly JS API used here. */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}

/** The kernels bound to one memory; arguments are byte addresses and byte strides as documented above. */
export interface SimdKernels {
  transpose(src: number, dst: number, batch: number, rows: number, cols: number): void;
  bmmAxpy(...args: number[]): void;
  bmmDot(...args: number[]): void;
  depthwiseFilterGrad(...args: number[]): void;
  adamW(...args: number[]): void;
}

/** The kernels' module: its binary (to instantiate on other threads too) and whether it fuses multiply-adds. */
export interface SimdModule {
  readonly bytes: Uint8Array;
  /** True where the products use relaxed SIMD's fused multiply-add (one rounding per step). */
  readonly fusedMultiplyAdd: boolean;
}

/**
 * V8 11 (Node 20) validates relaxed SIMD only behind a flag; V8 12 (Node 22) has it on by default. The
 * flag only changes what new modules may contain, so turning it on at run time is safe.
 */
function enableRelaxedSimd(): void {
  try {
    (require('v8') as typeof import('v8')).setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // Not V8: the plain module is used.
  }
}

function webAssembly(): WebAssemblyApi | undefined {
  return (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
}

/**
 * Assembles the kernels for a shared or unshared memory: with fused multiply-adds where the runtime
 * accepts relaxed SIMD (unless `fusedMultiplyAdd` is false), else with separate multiplies and adds.
 * Null where the runtime has no WebAssembly SIMD at all.
 */
export function compileSimdModule(shared: boolean, options: { fusedMultiplyAdd?: boolean } = {}): SimdModule | null {
  const api = webAssembly();
  if (!api) return null;
  // A shared memory import must state a maximum no smaller than the memory's own: wasm32's 4 GiB.
  const build = (fma: boolean) => assembleModule([transposeKernel(), bmmAxpyKernel(fma), bmmDotKernel(fma), depthwiseFilterGradKernel(), adamWKernel()], { shared, maxPages: shared ? 65536 : undefined });
  if (options.fusedMultiplyAdd !== false) {
    const bytes = build(true);
    if (!api.validate(bytes)) enableRelaxedSimd();
    if (api.validate(bytes)) return { bytes, fusedMultiplyAdd: true };
  }
  const bytes = build(false);
  return api.validate(bytes) ? { bytes, fusedMultiplyAdd: false } : null;
}

/** Whether `memory` is a shared (threads) memory. */
export function isSharedMemory(memory: WasmMemory): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
}

/**
 * Instantiates the kernels against `memory` (the wasm backend's heap), from `module` or a module
 * compiled for it. Returns null where the runtime has no WebAssembly SIMD; callers then keep the
 * stock kernels.
 */
export function instantiateSimdKernels(memory: WasmMemory, module: SimdModule | null = compileSimdModule(isSharedMemory(memory))): SimdKernels | null {
  const api = webAssembly();
  if (!api || !module) return null;
  const instance = new api.Instance(new api.Module(module.bytes), { env: { memory } });
  return instance.exports as unknown as SimdKernels;
}
