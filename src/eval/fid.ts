/**
 * Fréchet Inception Distance, as pytorch-fid computes it (mseitzer/pytorch-fid,
 * `src/pytorch_fid/fid_score.py`: `calculate_activation_statistics`, `calculate_frechet_distance`):
 *
 *   FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))
 *
 * with mu the mean and S the unbiased covariance (divides by N - 1, `np.cov(rowvar=False)`) of the
 * feature rows. Everything here is float64 (JS numbers): in float32 the trace term loses digits
 * already at d = 64, and FID uses d = 2048.
 *
 * tr(sqrtm(S1 S2)) is the sum of the square roots of the eigenvalues of S1 S2, read off a symmetric
 * matrix with the same eigenvalues: L^T S2 L with S1 = L L^T (Cholesky) when S1 is positive definite,
 * else sqrt(S1) S2 sqrt(S1), so rank-deficient covariances (fewer samples than dimensions) need no
 * special case. The final eigenvalues come from `symmetricEigenvalues` (no eigenvectors needed); the
 * factorisation and sqrt(S1)'s decomposition from ml-matrix. The result
 * equals scipy's sqrtm-based one up to rounding. Like pytorch-fid, a non-finite result is retried with `eps` added to both diagonals.
 *
 * Also here: reading and writing reference statistics in pytorch-fid's `.npz` format (`mu`, `sigma`).
 */
import { CholeskyDecomposition, EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { symmetricEigenvalues } from './symmetricEigenvalues';
import { NpyArray, readNpz, writeNpz } from '../io/npz';

/** Mean and covariance of a feature set. */
export interface FeatureStats {
  /** [d] */
  mu: Float64Array;
  /** [d, d] row-major, symmetric. */
  sigma: Float64Array;
  dim: number;
  /** Number of feature rows the statistics came from (0 when unknown, e.g. read from a file). */
  count: number;
}

/**
 * Mean and unbiased covariance of `n` feature rows of length `d` (row-major `features`), as
 * `np.mean(axis=0)` and `np.cov(rowvar=False)`. Two passes (centre, then accumulate) for accuracy.
 */
export function featureStatistics(features: ArrayLike<number>, n: number, d: number): FeatureStats {
  if (features.length !== n * d) throw new Error(`featureStatistics: ${features.length} values for ${n} rows of ${d} features`);
  if (n < 2) throw new Error(`featureStatistics: need at least 2 feature rows for a covariance, got ${n}`);
  // 1. Mean, accumulated in float64.
  const mu = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const row = i * d;
    for (let j = 0; j < d; j++) mu[j] += features[row + j];
  }
  for (let j = 0; j < d; j++) mu[j] /= n;
  // 2. Upper triangle of sum_i (x_i - mu)(x_i - mu)^T, four centred rows at a time: each pass over the
  //    d x d accumulator (32 MB at d = 2048, far larger than the caches) then does four updates.
  const sigma = new Float64Array(d * d);
  const block = 4;
  const c = new Float64Array(block * d);
  for (let i0 = 0; i0 < n; i0 += block) {
    const rows = Math.min(block, n - i0);
    c.fill(0);
    for (let r = 0; r < rows; r++) {
      const row = (i0 + r) * d;
      for (let j = 0; j < d; j++) c[r * d + j] = features[row + j] - mu[j];
    }
    const c0 = c.subarray(0, d);
    const c1 = c.subarray(d, 2 * d);
    const c2 = c.subarray(2 * d, 3 * d);
    const c3 = c.subarray(3 * d, 4 * d);
    for (let a = 0; a < d; a++) {
      const a0 = c0[a];
      const a1 = c1[a];
      const a2 = c2[a];
      const a3 = c3[a];
      const base = a * d;
      for (let b = a; b < d; b++) sigma[base + b] += a0 * c0[b] + a1 * c1[b] + a2 * c2[b] + a3 * c3[b];
    }
  }
  // 3. Divide by N - 1 and mirror the triangle.
  const inv = 1 / (n - 1);
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = sigma[a * d + b] * inv;
      sigma[a * d + b] = v;
      sigma[b * d + a] = v;
    }
  }
  return { mu, sigma, dim: d, count: n };
}

/** The terms of a Fréchet distance, for reports and debugging. */
export interface FrechetResult {
  fid: number;
  /** ||mu1 - mu2||^2 */
  meanTerm: number;
  trace1: number;
  trace2: number;
  /** tr(sqrtm(S1 S2)) */
  traceSqrt: number;
  /** The diagonal offset that was needed (0 when none). */
  eps: number;
}

function toMatrix(a: Float64Array, d: number): Matrix {
  const m = new Matrix(d, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m.set(i, j, a[i * d + j]);
  return m;
}

/**
 * C = A B for row-major d x d float64 matrices (i-k-j loop order: contiguous inner loop). With
 * `bLower`, B is lower triangular and only its nonzero part is read (half the work).
 */
function matmul(a: Float64Array, b: Float64Array, d: number, bLower = false): Float64Array {
  const c = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const ci = i * d;
    for (let k = 0; k < d; k++) {
      const aik = a[ci + k];
      if (aik === 0) continue;
      const bk = k * d;
      const end = bLower ? k + 1 : d;
      for (let j = 0; j < end; j++) c[ci + j] += aik * b[bk + j];
    }
  }
  return c;
}

/**
 * Eigen-decomposition of a symmetric matrix (its upper triangle is mirrored first so rounding
 * asymmetry cannot leak in). Returns eigenvalues and eigenvectors (columns of a row-major d x d).
 */
function symmetricEigen(a: Float64Array, d: number): { values: number[]; vectors: Float64Array } {
  const m = toMatrix(a, d);
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) m.set(j, i, m.get(i, j));
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const v = evd.eigenvectorMatrix;
  const vectors = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) vectors[i * d + j] = v.get(i, j);
  return { values: evd.realEigenvalues, vectors };
}

/** Square root of a symmetric PSD matrix: V sqrt(max(L, 0)) V^T (tiny negative eigenvalues are rounding). */
function psdSqrt(a: Float64Array, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const s = values.map((l) => Math.sqrt(Math.max(l, 0)));
  // V diag(s) V^T, built as (V * s) V^T.
  const vs = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) vs[i * d + k] = vectors[i * d + k] * s[k];
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      let acc = 0;
      for (let k = 0; k < d; k++) acc += vs[i * d + k] * vectors[j * d + k];
      out[i * d + j] = acc;
      out[j * d + i] = acc;
    }
  }
  return out;
}

/** The lower Cholesky factor of a symmetric matrix as row-major d x d, or null when it is not positive definite. */
function cholesky(a: Float64Array, d: number): Float64Array | null {
  const chol = new CholeskyDecomposition(toMatrix(a, d));
  if (!chol.isPositiveDefinite()) return null;
  const l = chol.lowerTriangularMatrix;
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) out[i * d + j] = l.get(i, j);
  return out;
}

/** C = A^T B for row-major d x d float64 matrices. */
function matmulTransposeA(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const c = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const ak = k * d;
    const bk = k * d;
    for (let i = 0; i < d; i++) {
      const aki = a[ak + i];
      if (aki === 0) continue;
      const ci = i * d;
      for (let j = 0; j < d; j++) c[ci + j] += aki * b[bk + j];
    }
  }
  return c;
}

/**
 * tr(sqrtm(S1 S2)) for symmetric PSD S1, S2: the sum of the square roots of the eigenvalues of a
 * symmetric matrix similar to S1 S2.
 * - `cholesky` (S1 positive definite, the usual case with more images than features): S1 = L L^T,
 *   eig(S1 S2) = eig(L^T S2 L): one factorisation and one eigendecomposition;
 * - `eigen` (any PSD S1, e.g. fewer images than features): eig(sqrt(S1) S2 sqrt(S1)), two
 *   eigendecompositions.
 * `auto` tries the first and falls back to the second.
 */
export function traceSqrtProduct(sigma1: Float64Array, sigma2: Float64Array, d: number, method: 'auto' | 'cholesky' | 'eigen' = 'auto'): number {
  let m: Float64Array | null = null;
  if (method !== 'eigen') {
    const l = cholesky(sigma1, d);
    if (l) m = matmul(matmulTransposeA(l, sigma2, d), l, d, true); // L^T S2 L
    else if (method === 'cholesky') throw new Error('traceSqrtProduct: sigma1 is not positive definite');
  }
  if (!m) {
    const r = psdSqrt(sigma1, d);
    m = matmul(matmul(r, sigma2, d), r, d); // [d, d] symmetric up to rounding
  }
  let t = 0;
  for (const l of symmetricEigenvalues(m, d)) t += Math.sqrt(Math.max(l, 0));
  return t;
}

function addDiagonal(a: Float64Array, d: number, eps: number): Float64Array {
  const out = Float64Array.from(a);
  for (let i = 0; i < d; i++) out[i * d + i] += eps;
  return out;
}

/**
 * Fréchet distance between two Gaussians N(mu1, S1) and N(mu2, S2).
 * @param eps diagonal offset for the retry when the first result is not finite (pytorch-fid: 1e-6)
 */
export function frechetDistance(s1: Pick<FeatureStats, 'mu' | 'sigma'>, s2: Pick<FeatureStats, 'mu' | 'sigma'>, eps = 1e-6): FrechetResult {
  const d = s1.mu.length;
  if (s2.mu.length !== d) throw new Error(`frechetDistance: mean vectors have different lengths (${d} and ${s2.mu.length})`);
  for (const [name, s] of [['sigma1', s1.sigma], ['sigma2', s2.sigma]] as const) {
    if (s.length !== d * d) throw new Error(`frechetDistance: ${name} has ${s.length} values, expected ${d}x${d} for ${d}-dimensional means`);
  }
  let meanTerm = 0;
  let trace1 = 0;
  let trace2 = 0;
  for (let i = 0; i < d; i++) {
    const diff = s1.mu[i] - s2.mu[i];
    meanTerm += diff * diff;
    trace1 += s1.sigma[i * d + i];
    trace2 += s2.sigma[i * d + i];
  }
  let used = 0;
  let traceSqrt = traceSqrtProduct(s1.sigma, s2.sigma, d);
  if (!Number.isFinite(traceSqrt)) {
    used = eps;
    traceSqrt = traceSqrtProduct(addDiagonal(s1.sigma, d, eps), addDiagonal(s2.sigma, d, eps), d);
  }
  return { fid: meanTerm + trace1 + trace2 - 2 * traceSqrt, meanTerm, trace1, trace2, traceSqrt, eps: used };
}

/** FID between two feature sets (rows of `d` features). */
export function fidFromFeatures(f1: ArrayLike<number>, n1: number, f2: ArrayLike<number>, n2: number, d: number): FrechetResult {
  return frechetDistance(featureStatistics(f1, n1, d), featureStatistics(f2, n2, d));
}

function asFloat64(a: NpyArray, what: string): Float64Array {
  if (a.data instanceof Float64Array) return a.data;
  if (a.data instanceof Float32Array) return Float64Array.from(a.data);
  throw new Error(`${what}: expected a floating-point array, got dtype ${a.dtype}`);
}

/**
 * Reads pytorch-fid statistics (`np.savez(path, mu=mu, sigma=sigma)`); errors name the file and what
 * is missing or mis-shaped.
 */
export function readFidStats(file: string): FeatureStats {
  const arrays = readNpz(file);
  const mu = arrays.get('mu');
  const sigma = arrays.get('sigma');
  if (!mu || !sigma) {
    throw new Error(`${file}: FID statistics need arrays "mu" and "sigma" (found: ${[...arrays.keys()].join(', ') || 'none'})`);
  }
  if (mu.shape.length !== 1) throw new Error(`${file}: "mu" must be 1-D, got shape (${mu.shape})`);
  const d = mu.shape[0];
  if (sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new Error(`${file}: "sigma" must be (${d}, ${d}) to match "mu", got (${sigma.shape})`);
  }
  const count = arrays.get('count');
  const n = count && count.data.length === 1 ? Number(count.data[0]) : 0;
  return { mu: asFloat64(mu, `${file}: mu`), sigma: asFloat64(sigma, `${file}: sigma`), dim: d, count: n };
}

/** Writes statistics in pytorch-fid's format (float64 `mu`, `sigma`; plus `count`, ignored by pytorch-fid). */
export function writeFidStats(file: string, stats: FeatureStats): void {
  const arrays: Record<string, { shape: number[]; data: NpyArray['data'] }> = {
    mu: { shape: [stats.dim], data: stats.mu },
    sigma: { shape: [stats.dim, stats.dim], data: stats.sigma },
  };
  if (stats.count > 0) arrays.count = { shape: [], data: new BigInt64Array([BigInt(stats.count)]) };
  writeNpz(file, arrays);
}
