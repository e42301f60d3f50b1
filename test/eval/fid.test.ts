import * as fs from 'fs';
import * as path from 'path';
import { featureStatistics, fidFromFeatures, frechetDistance, readFidStats, traceSqrtProduct } from '../../src/eval/fid';
import { rngFor } from '../../src/nn/random';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'npz');

/** n rows of d features: x = A z + mu with z standard normal (seeded). */
function gaussianRows(seed: number, n: number, d: number, a: Float64Array, mu: Float64Array): Float64Array {
  const rng = rngFor(seed, 'fid-test');
  const out = new Float64Array(n * d);
  const z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) z[k] = rng.normal();
    for (let r = 0; r < d; r++) {
      let acc = mu[r];
      for (let k = 0; k < d; k++) acc += a[r * d + k] * z[k];
      out[i * d + r] = acc;
    }
  }
  return out;
}

function randomMatrix(seed: number, d: number): Float64Array {
  const rng = rngFor(seed, 'matrix');
  return Float64Array.from({ length: d * d }, () => rng.normal());
}

/** S = A A^T. */
function gram(a: Float64Array, d: number): Float64Array {
  const s = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) s[i * d + j] += a[i * d + k] * a[j * d + k];
  return s;
}

/** Closed form for 2x2 covariances: tr sqrtm(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)). */
function frechet2x2(mu1: number[], s1: number[], mu2: number[], s2: number[]): number {
  const trProd = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
  const det = (s: number[]) => s[0] * s[3] - s[1] * s[2];
  const trSqrt = Math.sqrt(trProd + 2 * Math.sqrt(det(s1) * det(s2)));
  const dm = (mu1[0] - mu2[0]) ** 2 + (mu1[1] - mu2[1]) ** 2;
  return dm + s1[0] + s1[3] + s2[0] + s2[3] - 2 * trSqrt;
}

describe('feature statistics', () => {
  test('mean and unbiased covariance, as np.mean / np.cov(rowvar=False)', () => {
    const s = featureStatistics([1, 2, 3, 6, 5, 4], 3, 2);
    expect(Array.from(s.mu)).toEqual([3, 4]);
    expect(Array.from(s.sigma)).toEqual([4, 2, 2, 4]);
    expect(s.count).toBe(3);
  });

  test('bad shapes are clear errors', () => {
    expect(() => featureStatistics([1, 2, 3], 2, 2)).toThrow(/3 values for 2 rows of 2 features/);
    expect(() => featureStatistics([1, 2], 1, 2)).toThrow(/at least 2 feature rows/);
    const a = { mu: new Float64Array(2), sigma: new Float64Array(4) };
    expect(() => frechetDistance(a, { mu: new Float64Array(3), sigma: new Float64Array(9) })).toThrow(/different lengths \(2 and 3\)/);
    expect(() => frechetDistance(a, { mu: new Float64Array(2), sigma: new Float64Array(9) })).toThrow(/sigma2 has 9 values, expected 2x2/);
  });
});

describe('Frechet distance', () => {
  const d = 12;
  const n = 400;
  const a = randomMatrix(1, d);
  const mu = Float64Array.from({ length: d }, (_, i) => i / 4 - 1);
  const x = gaussianRows(2, n, d, a, mu);
  const traceX = (() => {
    const s = featureStatistics(x, n, d);
    let t = 0;
    for (let i = 0; i < d; i++) t += s.sigma[i * d + i];
    return t;
  })();

  test('a set against itself is ~0', () => {
    const r = fidFromFeatures(x, n, x, n, d);
    expect(Math.abs(r.fid)).toBeLessThan(1e-9 * traceX);
    expect(r.eps).toBe(0);
  });

  test('a shifted set: exactly the squared shift (same covariance)', () => {
    const shift = Float64Array.from({ length: d }, (_, i) => (i % 3) - 0.5);
    const y = x.map((v, k) => v + shift[k % d]);
    const want = shift.reduce((acc, s) => acc + s * s, 0);
    expect(fidFromFeatures(x, n, y, n, d).fid).toBeCloseTo(want, 9);
  });

  test('a scaled and shifted set: ||(c - 1) mu + shift||^2 + (1 - c)^2 tr(S)', () => {
    const c = 1.7;
    const shift = Float64Array.from({ length: d }, (_, i) => Math.sin(i));
    const y = x.map((v, k) => c * v + shift[k % d]);
    const sx = featureStatistics(x, n, d);
    let meanTerm = 0;
    for (let i = 0; i < d; i++) meanTerm += ((c - 1) * sx.mu[i] + shift[i]) ** 2;
    const want = meanTerm + (1 - c) ** 2 * traceX;
    expect(fidFromFeatures(x, n, y, n, d).fid).toBeCloseTo(want, 8);
  });

  test('the Cholesky and eigen routes to tr(sqrtm(S1 S2)) agree', () => {
    const s1 = featureStatistics(x, n, d).sigma;
    const s2 = gram(randomMatrix(9, d), d);
    const a = traceSqrtProduct(s1, s2, d, 'cholesky');
    const b = traceSqrtProduct(s1, s2, d, 'eigen');
    expect(Math.abs(a - b) / b).toBeLessThan(1e-12);
  });

  test('known Gaussians, non-commuting 2x2 covariances: the closed form', () => {
    const s1 = [2, 0.6, 0.6, 1];
    const s2 = [0.5, -0.3, -0.3, 3];
    const got = frechetDistance({ mu: Float64Array.from([1, 2]), sigma: Float64Array.from(s1) }, { mu: Float64Array.from([-1, 0.5]), sigma: Float64Array.from(s2) });
    expect(got.fid).toBeCloseTo(frechet2x2([1, 2], s1, [-1, 0.5], s2), 12);
  });

  test('known Gaussians, diagonal covariances: sum (sqrt a - sqrt b)^2 + ||mu1 - mu2||^2', () => {
    const k = 50;
    const va = Float64Array.from({ length: k }, (_, i) => 0.1 + i / 10);
    const vb = Float64Array.from({ length: k }, (_, i) => 2 + Math.cos(i));
    const diag = (v: Float64Array) => {
      const s = new Float64Array(k * k);
      v.forEach((x, i) => (s[i * k + i] = x));
      return s;
    };
    const mu1 = Float64Array.from({ length: k }, (_, i) => i / k);
    const mu2 = new Float64Array(k);
    let want = 0;
    for (let i = 0; i < k; i++) want += (Math.sqrt(va[i]) - Math.sqrt(vb[i])) ** 2 + mu1[i] ** 2;
    expect(frechetDistance({ mu: mu1, sigma: diag(va) }, { mu: mu2, sigma: diag(vb) }).fid).toBeCloseTo(want, 10);
  });

  test('samples of two known Gaussians approach the closed form', () => {
    const l1 = Float64Array.from([1.2, 0, 0.5, 0.8]);
    const l2 = Float64Array.from([0.6, 0.2, -0.4, 1.5]);
    const m1 = Float64Array.from([0, 1]);
    const m2 = Float64Array.from([1, -1]);
    const N = 20000;
    const got = fidFromFeatures(gaussianRows(3, N, 2, l1, m1), N, gaussianRows(4, N, 2, l2, m2), N, 2).fid;
    const want = frechet2x2([0, 1], Array.from(gram(l1, 2)), [1, -1], Array.from(gram(l2, 2)));
    expect(Math.abs(got - want) / want).toBeLessThan(0.03);
  });

  test("pytorch-fid's result (scipy sqrtm) on statistics files, one rank-deficient", () => {
    const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as { fid_a_b: number };
    const sa = readFidStats(path.join(FIX, 'stats_a.npz'));
    const sb = readFidStats(path.join(FIX, 'stats_b.npz'));
    expect(frechetDistance(sa, sb).fid).toBeCloseTo(expected.fid_a_b, 6);
    // sigma_b (10 rows of 16 features) has no Cholesky factor: the eigen route takes over.
    expect(() => traceSqrtProduct(sb.sigma, sa.sigma, 16, 'cholesky')).toThrow(/not positive definite/);
    expect(frechetDistance(sb, sa).fid).toBeCloseTo(expected.fid_a_b, 6);
    expect(Math.abs(frechetDistance(sa, sa).fid)).toBeLessThan(1e-8);
  });
});
