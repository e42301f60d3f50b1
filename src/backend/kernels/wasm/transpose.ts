/**
 * `Transpose` on wasm: permutations that amount to transposing a batch of matrices (after dropping
 * unit axes and merging axes that stay together) run as the tiled SIMD kernel; tfjs-backend-wasm
 * 4.22's kernel walks the output in order and reads the input a row apart each time, so transposing
 * [1024, 1280] took 11 ms (0.8 ms tiled). The transposes materialised before GEMMs in a backward pass
 * are all of this kind. Other permutations (e.g. splitting attention heads, which moves whole rows)
 * keep the original kernel, which is fast for them.
 */
import * as tf from '@tensorflow/tfjs';
import { wasmHeap } from './heap';
import { OriginalKernel, wrapWasmKernel } from './replace';

/**
 * The same permutation on fewer axes: unit axes dropped, and input axes that stay adjacent and in
 * order in the output merged into one.
 */
export function collapsePermutation(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = shape.map((d, i) => i).filter((i) => shape[i] !== 1);
  const rank = new Map(kept.map((axis, i) => [axis, i]));
  const order = perm.filter((a) => rank.has(a)).map((a) => rank.get(a) as number); // output order, in kept indices
  // Runs of consecutive input axes in the output order.
  const groups: number[][] = [];
  for (const a of order) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1] + 1 === a) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((x, y) => x[0] - y[0]);
  return {
    shape: byInput.map((g) => g.reduce((p, a) => p * shape[kept[a]], 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

/** [batch, rows, cols] when the permutation transposes a batch of matrices, else null. */
export function asMatrixTranspose(shape: readonly number[], perm: readonly number[]): [number, number, number] | null {
  const c = collapsePermutation(shape, perm);
  if (c.perm.length === 2 && c.perm[0] === 1) return [1, c.shape[0], c.shape[1]];
  if (c.perm.length === 3 && c.perm[0] === 0 && c.perm[1] === 2 && c.perm[2] === 1) return [c.shape[0], c.shape[1], c.shape[2]];
  return null;
}

export function registerWasmTranspose(): void {
  wrapWasmKernel('Transpose', (original: OriginalKernel) => (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { perm } = args.attrs as unknown as { perm: number[] };
    const sized = x.shape.every((d) => d > 0);
    const heap = sized && (x.dtype === 'float32' || x.dtype === 'int32') ? wasmHeap(args.backend) : null;
    const matrices = heap ? asMatrixTranspose(x.shape, perm) : null;
    if (!heap || !matrices) return original(args);
    const out = heap.alloc(perm.map((a) => x.shape[a]), x.dtype);
    heap.kernels.transpose(heap.address(x), heap.address(out), ...matrices);
    return out;
  });
}
