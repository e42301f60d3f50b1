/** Eigenvalues of symmetric matrices (FID's trace term) against ml-matrix's full decomposition. */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { symmetricEigenvalues } from '../../src/eval/symmetricEigenvalues';

function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
}

function reference(a: Float64Array, n: number): number[] {
  const m = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m.set(i, j, a[i * n + j]);
  return new EigenvalueDecomposition(m, { assumeSymmetric: true }).realEigenvalues.slice().sort((x, y) => x - y);
}

function expectEigenvalues(a: Float64Array, n: number, want: number[]): void {
  const got = Array.from(symmetricEigenvalues(a, n));
  const scale = Math.max(1, ...want.map(Math.abs));
  got.forEach((g, i) => expect(Math.abs(g - want[i]) / scale).toBeLessThan(1e-12));
}

test.each([1, 2, 3, 8, 33, 120])('random symmetric matrix, n = %i', (n) => {
  const rnd = lcg(n);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rnd();
  expectEigenvalues(a, n, reference(a, n));
});

test('covariance-like PSD matrix with a wide spread of eigenvalues', () => {
  const n = 40;
  const rnd = lcg(5);
  const x = Array.from({ length: n * 12 }, () => rnd()); // 12 samples: rank 12, many zero eigenvalues
  const a = new Float64Array(n * n);
  for (let s = 0; s < 12; s++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] += x[s * n + i] * x[s * n + j] * (1 + 100 * (i === j ? 1 : 0));
  expectEigenvalues(a, n, reference(a, n));
});

test('already diagonal, block-diagonal and repeated eigenvalues', () => {
  const n = 6;
  const diag = new Float64Array(n * n);
  [3, -1, 2, 2, 0, 5].forEach((v, i) => (diag[i * n + i] = v));
  expectEigenvalues(diag, n, [-1, 0, 2, 2, 3, 5]);
  const blocks = new Float64Array(n * n);
  // Two 3x3 blocks of all ones (eigenvalues 3, 0, 0 each) with no coupling between them.
  for (const o of [0, 3]) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) blocks[(o + i) * n + o + j] = 1;
  expectEigenvalues(blocks, n, [0, 0, 0, 0, 3, 3]);
  const identity = new Float64Array(n * n);
  for (let i = 0; i < n; i++) identity[i * n + i] = 1;
  expectEigenvalues(identity, n, [1, 1, 1, 1, 1, 1]);
});

test('the input is not modified and only its upper triangle is read', () => {
  const a = Float64Array.from([2, 1, 0, 99, 2, 1, 99, 99, 2]); // lower triangle is garbage
  const copy = a.slice();
  expectEigenvalues(a, 3, [2 - Math.SQRT2, 2, 2 + Math.SQRT2]);
  expect(Array.from(a)).toEqual(Array.from(copy));
});
