/**
 * Eigenvalues (only) of a real symmetric matrix, in float64: Householder reduction to tridiagonal
 * form, then implicit QL iterations with Wilkinson-style shifts on the tridiagonal matrix. Skipping
 * the eigenvectors roughly halves the work of a full decomposition (ml-matrix accumulates them), which
 * is what an FID needs: tr(sqrtm(S1 S2)) is a sum over eigenvalues.
 */

/**
 * Householder tridiagonalisation of symmetric `a` (row-major n x n; overwritten): returns the diagonal
 * and the sub-diagonal (e[i] couples rows i and i + 1; e[n-1] = 0).
 */
function tridiagonalize(a: Float64Array, n: number): { diag: Float64Array; off: Float64Array } {
  const diag = new Float64Array(n);
  const off = new Float64Array(n);
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    // Reflect column k below the diagonal, x = a[k+1..n-1][k], onto a multiple of e_1.
    let norm2 = 0;
    for (let i = k + 1; i < n; i++) norm2 += a[i * n + k] * a[i * n + k];
    const x0 = a[(k + 1) * n + k];
    const alpha = norm2 === 0 ? 0 : x0 >= 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    diag[k] = a[k * n + k];
    off[k] = alpha;
    // v = x - alpha e_1, scaled so that H = I - 2 v v^T / (v^T v) = I - beta v v^T.
    let vv = 0;
    for (let i = k + 1; i < n; i++) {
      v[i] = a[i * n + k] - (i === k + 1 ? alpha : 0);
      vv += v[i] * v[i];
    }
    if (vv === 0) continue; // already tridiagonal in this column
    const beta = 2 / vv;
    // A22 <- H A22 H = A22 - v w^T - w v^T with p = beta A22 v, w = p - (beta/2)(p^T v) v.
    let pv = 0;
    for (let i = k + 1; i < n; i++) {
      let s = 0;
      const row = i * n;
      for (let j = k + 1; j < n; j++) s += a[row + j] * v[j];
      p[i] = beta * s;
      pv += p[i] * v[i];
    }
    const half = (beta / 2) * pv;
    for (let i = k + 1; i < n; i++) p[i] -= half * v[i]; // p is now w
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i];
      const wi = p[i];
      for (let j = k + 1; j < n; j++) a[row + j] -= vi * p[j] + wi * v[j];
    }
  }
  if (n >= 2) {
    diag[n - 2] = a[(n - 2) * n + (n - 2)];
    off[n - 2] = a[(n - 1) * n + (n - 2)];
  }
  if (n >= 1) diag[n - 1] = a[(n - 1) * n + (n - 1)];
  off[n - 1] = 0;
  return { diag, off };
}

/**
 * Eigenvalues of the symmetric tridiagonal matrix (diag, off), by implicit QL iterations: each sweep
 * chases a bulge from the bottom of the unreduced block up to `l`, shifted by the eigenvalue of the
 * leading 2 x 2 block nearest its corner. `diag` and `off` are overwritten; returns `diag`.
 */
function tridiagonalEigenvalues(diag: Float64Array, off: Float64Array, n: number): Float64Array {
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    for (let iter = 0; ; iter++) {
      // Find the first negligible off-diagonal entry at or below l: the block l..m is unreduced.
      let m = l;
      for (; m < n - 1; m++) {
        const scale = Math.abs(diag[m]) + Math.abs(diag[m + 1]);
        if (Math.abs(off[m]) <= eps * scale) break;
      }
      if (m === l) break;
      if (iter >= 60) throw new Error(`symmetric eigenvalues: no convergence at row ${l} after 60 QL sweeps`);
      // Shift: eigenvalue of the top 2 x 2 block [[d_l, e_l], [e_l, d_l+1]] nearest d_l.
      let g = (diag[l + 1] - diag[l]) / (2 * off[l]);
      let r = Math.hypot(g, 1);
      g = diag[m] - diag[l] + off[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      for (; i >= l; i--) {
        const f = s * off[i];
        const b = c * off[i];
        r = Math.hypot(f, g);
        off[i + 1] = r;
        if (r === 0) {
          // Underflow: the block splits here.
          diag[i + 1] -= p;
          off[m] = 0;
          break;
        }
        s = f / r;
        c = g / r;
        g = diag[i + 1] - p;
        r = (diag[i] - g) * s + 2 * c * b;
        p = s * r;
        diag[i + 1] = g + p;
        g = c * r - b;
      }
      if (r === 0 && i >= l) continue;
      diag[l] -= p;
      off[l] = g;
      off[m] = 0;
    }
  }
  return diag;
}

/** Eigenvalues of symmetric `a` (row-major n x n; not modified; its upper triangle is used), ascending. */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  const work = new Float64Array(n * n);
  // Mirror the upper triangle so rounding asymmetry of the input cannot leak in.
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      work[i * n + j] = a[i * n + j];
      work[j * n + i] = a[i * n + j];
    }
  }
  const { diag, off } = tridiagonalize(work, n);
  return tridiagonalEigenvalues(diag, off, n).sort();
}
