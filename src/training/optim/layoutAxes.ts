/**
 * Where each PyTorch axis of a parameter lives in memory. Optimizers that treat axes differently
 * (CAME factors the second-moment statistics over the last two PyTorch axes) must follow the
 * reference's axis meaning, not the TF storage order. The table mirrors the one in `src/nn/layout.ts`
 * (a test checks the two agree by transposing real tensors).
 */
import { Layout } from '../../nn/layout';

/** `axes[i]` is the in-memory (TF layout) axis that holds PyTorch axis `i`. */
export function torchAxesInMemory(layout: Layout, rank: number): number[] {
  switch (layout) {
    case 'identity':
      return Array.from({ length: rank }, (_, i) => i);
    case 'linear': // torch [out, in]       <- memory [in, out]
      return [1, 0];
    case 'conv2d': // torch [out, in, kh, kw] <- memory [kh, kw, in, out]
      return [3, 2, 0, 1];
    case 'depthwise': // torch [C, 1, kh, kw] <- memory [kh, kw, C, 1]
      return [2, 3, 0, 1];
  }
}
