/**
 * Small dense linear algebra in float64 on the CPU, for methods that need a decomposition tfjs does not
 * provide (Conda's SVD-based projection).
 */

/** Eigen-decomposition of a symmetric matrix. */
export interface SymmetricEigen {
  /** Eigenvalues, in descending order. */
  values: Float64Array;
  /** Eigenvectors as the COLUMNS of a row-major n x n matrix, in the order of `values`. */
  vectors: Float64Array;
}

/**
 * Cyclic Jacobi eigen-decomposition of the symmetric row-major n x n matrix `a` (only its values are read;
 * asymmetry is averaged away). Rotations zero each off-diagonal entry in turn until the off-diagonal mass
 * is below 1e-15 of the total, which gives eigenvectors orthogonal to machine precision. O(n^3) per sweep.
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += m[i] * m[i];
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += 2 * m[i * n + j] * m[i * n + j];
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p];
          const mkq = m[k * n + q];
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k];
          const mqk = m[q * n + k];
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = [...Array(n).keys()].sort((i, j) => m[j * n + j] - m[i * n + i]);
  const values = Float64Array.from(order, (i) => m[i * n + i]);
  const vectors = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) vectors[r * n + c] = v[r * n + order[c]];
  return { values, vectors };
}

/**
 * The orthogonal factor of the SVD of the row-major m x n matrix `a` along its SMALLER side: for m >= n
 * the right singular vectors V (n x n, as columns), else the left singular vectors U (m x m, as columns),
 * ordered by descending singular value; computed as the eigenvectors of A^T A or A A^T.
 */
export function smallerSideSingularVectors(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const k = Math.min(m, n);
  const gram = new Float64Array(k * k);
  if (m >= n) {
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) {
      let s = 0;
      for (let r = 0; r < m; r++) s += a[r * n + i] * a[r * n + j];
      gram[i * n + j] = s;
      gram[j * n + i] = s;
    }
  } else {
    for (let i = 0; i < m; i++) for (let j = i; j < m; j++) {
      let s = 0;
      for (let c = 0; c < n; c++) s += a[i * n + c] * a[j * n + c];
      gram[i * m + j] = s;
      gram[j * m + i] = s;
    }
  }
  return symmetricEigen(gram, k).vectors;
}
