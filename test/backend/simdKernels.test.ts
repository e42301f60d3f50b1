/**
 * The hand-assembled WebAssembly SIMD kernels (src/backend/kernels/wasm/simd) on a memory of their
 * own, shared (as the threaded wasm backend's heap) and not, against plain JS loops: strided batched
 * products in both forms and tiled transposes, with sizes off the tile and vector multiples. Also the
 * permutation analysis that decides which transposes they take.
 */
import { compileSimdModule, instantiateSimdKernels, SimdKernels, WasmMemory } from '../../src/backend/kernels/wasm/simd/kernels';
import { asMatrixTranspose, collapsePermutation } from '../../src/backend/kernels/wasm/transpose';

const api = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory } }).WebAssembly;

function fill(f: Float32Array, start: number, count: number, seed: number): void {
  for (let i = 0; i < count; i++) f[start + i] = Math.sin(seed * 7.13 + i * 1.37);
}

/** Byte addresses on the memory for the three operands of a product (A at 0). */
const B_AT = 1 << 18;
const C_AT = 2 << 18;
/** Scratch space of the product kernel. */
const PACK_AT = 3 << 18;

describe.each([
  ['shared memory, fused multiply-adds where available', true, true],
  ['unshared memory, fused multiply-adds where available', false, true],
  ['shared memory, separate multiplies and adds', true, false],
])('SIMD kernels on %s', (_label, shared, fused) => {
  let memory: WasmMemory;
  let k: SimdKernels;
  let f: Float32Array;

  beforeAll(() => {
    memory = new api.Memory(shared ? { initial: 16, maximum: 65536, shared: true } : { initial: 16 });
    const kernels = instantiateSimdKernels(memory, compileSimdModule(shared, { fusedMultiplyAdd: fused }));
    if (!kernels) throw new Error('WebAssembly SIMD unavailable: Node 20+ has it');
    k = kernels;
    f = new Float32Array(memory.buffer);
  });

  test.each([
    [1, 4, 4],
    [2, 37, 50],
    [3, 16, 33],
    [1, 1, 9],
    [2, 5, 3],
  ])('transpose batch %i of %i x %i', (batch, rows, cols) => {
    fill(f, 0, batch * rows * cols, rows);
    k.transpose(0, B_AT, batch, rows, cols);
    const out = new Float32Array(memory.buffer, B_AT, batch * rows * cols);
    for (let b = 0; b < batch; b++)
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) expect(out[b * rows * cols + c * rows + r]).toBe(f[b * rows * cols + r * cols + c]);
  });

  /** Reference C[p][m][n] from element getters. */
  function reference(batch: number, M: number, K: number, N: number, a: (p: number, m: number, k: number) => number, b: (p: number, k: number, n: number) => number): number[] {
    const out: number[] = [];
    for (let p = 0; p < batch; p++)
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let q = 0; q < K; q++) s += a(p, m, q) * b(p, q, n);
          out.push(s);
        }
    return out;
  }

  /** Within float32 rounding of K products of values in [-1, 1]. */
  function expectClose(actual: Float32Array, expected: number[], K: number): void {
    expect(actual.length).toBe(expected.length);
    let worst = 0;
    expected.forEach((e, i) => (worst = Math.max(worst, Math.abs(actual[i] - e))));
    expect(worst).toBeLessThanOrEqual(2e-7 * Math.max(K, 4));
  }

  test.each([
    [1, 3, 7, 5, 10, false],
    [2, 3, 9, 21, 37, false],
    [1, 4, 32, 64, 32, true],
    [3, 1, 1, 5, 16, true],
    [1, 2, 6, 0, 4, false],
    // Sums longer than one pass (256 terms) are added into the output in further passes.
    [1, 2, 5, 600, 37, false],
    [2, 1, 3, 513, 20, true],
    // Rows in blocks of 128, the last one odd.
    [1, 1, 301, 40, 21, false],
  ])('bmmAxpy outer %i inner %i: [%i x %i] x [K x %i], A transposed %s', (outer, inner, M, K, N, aTransposed) => {
    const batch = outer * inner;
    fill(f, 0, batch * M * K, 1);
    fill(f, B_AT / 4, batch * K * N, 2);
    const [sAm, sAk] = aTransposed ? [4, 4 * M] : [4 * K, 4];
    k.bmmAxpy(0, B_AT, C_AT, outer, inner, M, K, N, 4 * inner * M * K, 4 * M * K, sAm, sAk, 4 * inner * K * N, 4 * K * N, 4 * N, 4 * inner * M * N, 4 * M * N, 4 * N, PACK_AT);
    const a = (p: number, m: number, q: number) => f[p * M * K + (aTransposed ? q * M + m : m * K + q)];
    const b = (p: number, q: number, n: number) => f[B_AT / 4 + p * K * N + q * N + n];
    expectClose(new Float32Array(memory.buffer, C_AT, batch * M * N), reference(batch, M, K, N, a, b), K);
  });

  test('bmmAxpy broadcasts an operand with batch stride 0 and writes strided output rows', () => {
    // A: one [6 x 5] for every batch; output rows 8 floats apart (2 columns of padding left alone).
    const [batch, M, K, N, rowStride] = [3, 6, 5, 6, 8];
    fill(f, 0, M * K, 3);
    fill(f, B_AT / 4, batch * K * N, 4);
    f.fill(-7, C_AT / 4, C_AT / 4 + batch * M * rowStride);
    k.bmmAxpy(0, B_AT, C_AT, 1, batch, M, K, N, 0, 0, 4 * K, 4, 0, 4 * K * N, 4 * N, 0, 4 * M * rowStride, 4 * rowStride, PACK_AT);
    const expected = reference(batch, M, K, N, (_p, m, q) => f[m * K + q], (p, q, n) => f[B_AT / 4 + p * K * N + q * N + n]);
    const out = new Float32Array(memory.buffer, C_AT, batch * M * rowStride);
    expected.forEach((e, i) => {
      const [p, m, n] = [Math.floor(i / (M * N)), Math.floor(i / N) % M, i % N];
      expect(Math.abs(out[p * M * rowStride + m * rowStride + n] - e)).toBeLessThan(1e-5);
    });
    for (let r = 0; r < batch * M; r++) expect([out[r * rowStride + 6], out[r * rowStride + 7]]).toEqual([-7, -7]);
  });

  test.each([
    [2, 17, 9, 1],
    [3, 4, 8, 5],
    [1, 2, 3, 2],
  ])('bmmDot batch %i: [%i x %i] x [%i rows]^T', (batch, M, K, N) => {
    fill(f, 0, batch * M * K, 5);
    fill(f, B_AT / 4, batch * N * K, 6);
    k.bmmDot(0, B_AT, C_AT, 1, batch, M, K, N, 0, 4 * M * K, 4 * K, 0, 4 * N * K, 4 * K, 0, 4 * M * N, 4 * N);
    const expected = reference(batch, M, K, N, (p, m, q) => f[p * M * K + m * K + q], (p, q, n) => f[B_AT / 4 + p * N * K + n * K + q]);
    expectClose(new Float32Array(memory.buffer, C_AT, batch * M * N), expected, K);
  });
});

describe('which transposes are batches of matrix transposes', () => {
  test('unit axes drop and adjacent axes merge', () => {
    expect(collapsePermutation([1, 1024, 256], [0, 2, 1])).toEqual({ shape: [1024, 256], perm: [1, 0] });
    expect(collapsePermutation([4, 8, 256, 32], [0, 2, 1, 3])).toEqual({ shape: [4, 8, 256, 32], perm: [0, 2, 1, 3] });
    expect(collapsePermutation([2, 3, 4, 5], [0, 1, 3, 2])).toEqual({ shape: [6, 4, 5], perm: [0, 2, 1] });
    expect(collapsePermutation([2, 3, 4, 5], [2, 3, 0, 1])).toEqual({ shape: [6, 20], perm: [1, 0] });
    expect(collapsePermutation([1, 1], [1, 0])).toEqual({ shape: [], perm: [] });
  });

  test('matrix transposes are recognised, head splits are not', () => {
    expect(asMatrixTranspose([1, 1024, 256], [0, 2, 1])).toEqual([1, 1024, 256]);
    expect(asMatrixTranspose([32, 256, 32], [0, 2, 1])).toEqual([32, 256, 32]);
    expect(asMatrixTranspose([2, 3, 4, 5], [2, 3, 0, 1])).toEqual([1, 6, 20]);
    expect(asMatrixTranspose([4, 8, 256, 32], [0, 2, 1, 3])).toBeNull();
    expect(asMatrixTranspose([5, 7], [0, 1])).toBeNull();
  });
});
