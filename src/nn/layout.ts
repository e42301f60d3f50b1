/**
 * The one place that converts weights between PyTorch's layouts (on disk, in checkpoint files) and
 * TF's (in memory). Each parameter declares its layout tag; loading and saving go through here.
 *
 * | tag        | PyTorch                      | TF (in memory)            |
 * |------------|------------------------------|---------------------------|
 * | identity   | any                          | same                      |
 * | linear     | [out, in]                    | [in, out]                 |
 * | conv2d     | [out, in/groups, kh, kw]     | [kh, kw, in/groups, out]  |
 * | depthwise  | [C*m, 1, kh, kw]             | [kh, kw, C, m]            |
 */
import { tf, Tensor } from '../backend';

export type Layout = 'identity' | 'linear' | 'conv2d' | 'depthwise';

/** TF-layout shape of a parameter whose PyTorch shape is `torchShape`. */
export function tfShapeOf(layout: Layout, torchShape: readonly number[]): number[] {
  const s = torchShape;
  switch (layout) {
    case 'identity':
      return [...s];
    case 'linear':
      return [s[1], s[0]];
    case 'conv2d':
      return [s[2], s[3], s[1], s[0]];
    case 'depthwise':
      // Channel multiplier m = out / in; the in-channel count is not in the torch shape, so depthwise
      // parameters are always created with m = 1 (all SANA/DC-AE depthwise convs are).
      return [s[2], s[3], s[0], 1];
  }
}

/** The axis permutation taking a PyTorch-layout tensor to TF layout (`transpose(perm)`); null = same layout. */
const TORCH_TO_TF_PERM: Record<Layout, readonly number[] | null> = {
  identity: null,
  linear: [1, 0],
  conv2d: [2, 3, 1, 0],
  depthwise: [2, 3, 0, 1],
};

/** The permutation undoing `perm`. */
function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** PyTorch tensor -> TF layout. `t` has the PyTorch shape. */
export function torchToTf(layout: Layout, t: Tensor): Tensor {
  const perm = TORCH_TO_TF_PERM[layout];
  return tf.tidy(() => (perm ? t.transpose([...perm]) : t.clone()));
}

/** TF layout -> PyTorch layout (inverse of `torchToTf`). */
export function tfToTorch(layout: Layout, t: Tensor): Tensor {
  const perm = TORCH_TO_TF_PERM[layout];
  return tf.tidy(() => (perm ? t.transpose(inversePerm(perm)) : t.clone()));
}

/** Host-side version of `torchToTf` for Float32 data (used by streaming loaders to avoid a device copy). */
export function torchToTfHost(layout: Layout, torchShape: readonly number[], data: Float32Array): Float32Array {
  const perm = TORCH_TO_TF_PERM[layout];
  return perm ? permuteHost(data, torchShape, perm) : data;
}

/** Permutes a row-major host array like `transpose(perm)`. */
export function permuteHost(data: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStrides = new Array<number>(rank);
  let acc = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = acc;
    acc *= shape[i];
  }
  const out = new Float32Array(data.length);
  if (rank === 2) {
    const [r, c] = shape;
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = data[i * c + j];
    return out;
  }
  const idx = new Array<number>(rank).fill(0);
  const stridesOut = perm.map((p) => inStrides[p]);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d] * stridesOut[d];
    out[o] = data[src];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < outShape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}
