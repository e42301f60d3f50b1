/**
 * The helper threads that run SIMD kernel calls alongside the calling thread on a shared memory
 * (src/backend/kernels/wasm/simd/helperThreads.ts), and the splitting of products into parts.
 */
import { splitRange } from '../../src/backend/kernels/wasm/heap';
import { HelperThreads } from '../../src/backend/kernels/wasm/simd/helperThreads';
import { SimdKernels, WasmMemory, compileSimdModule, instantiateSimdKernels } from '../../src/backend/kernels/wasm/simd/kernels';

const api = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory } }).WebAssembly;

describe('splitRange', () => {
  test('covers every item once, in granules, over at most the given parts', () => {
    for (const [count, parts, granule] of [[10, 2, 2], [11, 2, 2], [1, 4, 2], [7, 3, 1], [100, 8, 2], [3, 5, 1]]) {
      const ranges = splitRange(count, parts, granule);
      expect(ranges.length).toBeLessThanOrEqual(parts);
      let next = 0;
      for (const [start, length] of ranges) {
        expect(start).toBe(next);
        expect(start % granule).toBe(0);
        expect(length).toBeGreaterThan(0);
        next = start + length;
      }
      expect(next).toBe(count);
    }
    expect(splitRange(1024, 2, 2)).toEqual([[0, 512], [512, 512]]);
    expect(splitRange(7, 2, 2)).toEqual([[0, 4], [4, 3]]);
  });
});

describe('helper threads', () => {
  const [M, K, N] = [64, 40, 48];
  const [A, B, C, C2, PACKS] = [0, 1 << 16, 2 << 16, 3 << 16, 4 << 16];
  let memory: WasmMemory;
  let kernels: SimdKernels;
  let helpers: HelperThreads;
  let f: Float32Array;

  beforeAll(async () => {
    memory = new api.Memory({ initial: 8, maximum: 65536, shared: true });
    const module = compileSimdModule(true);
    if (!module) throw new Error('WebAssembly SIMD unavailable: Node 20+ has it');
    kernels = instantiateSimdKernels(memory, module)!;
    helpers = new HelperThreads(module, memory, Object.keys(kernels), 1);
    await helpers.ready();
    f = new Float32Array(memory.buffer);
    for (let i = 0; i < M * K; i++) f[A / 4 + i] = Math.sin(i * 0.37);
    for (let i = 0; i < K * N; i++) f[B / 4 + i] = Math.cos(i * 0.11);
  });

  const here = (args: number[]) => (kernels.bmmAxpy as (...a: number[]) => void)(...args);
  // Each thread's part gets its own scratch space (below A: the kernels need 16 KB).
  let parts = 0;
  const rowsArgs = (c: number, r: number, rows: number) => [A + 4 * r * K, B, c + 4 * r * N, 1, 1, rows, K, N, 0, 0, 4 * K, 4, 0, 0, 4 * N, 0, 0, 4 * N, PACKS + (parts++ % 2) * (1 << 14)];

  test('a product split by rows over the calling thread and a helper equals the one-thread product', () => {
    here(rowsArgs(C, 0, M));
    f.fill(NaN, C2 / 4, C2 / 4 + M * N);
    for (let repeat = 0; repeat < 50; repeat++) helpers.run('bmmAxpy', splitRange(M, 2, 2).map(([r, rows]) => rowsArgs(C2, r, rows)), here);
    expect(Array.from(f.subarray(C2 / 4, C2 / 4 + M * N))).toEqual(Array.from(f.subarray(C / 4, C / 4 + M * N)));
  });

  test('a kernel failing on a helper raises an error instead of hanging', () => {
    // An output address past the end of the memory traps in the helper's part (helpers take the first parts).
    const past = memory.buffer.byteLength + (1 << 20);
    expect(() => helpers.run('bmmAxpy', [rowsArgs(past, 2, 2), rowsArgs(C2, 0, 2)], here)).toThrow(/failed on a helper thread/);
    // A failure on the calling thread is raised once the helper has finished.
    expect(() => helpers.run('bmmAxpy', [rowsArgs(C2, 0, 2), rowsArgs(past, 2, 2)], here)).toThrow(/out of bounds/);
    // The helper is still there for the next call.
    helpers.run('bmmAxpy', [rowsArgs(C2, 0, 32), rowsArgs(C2, 32, 32)], here);
    expect(f[C2 / 4]).toBe(f[C / 4]);
  });

  test('names the problem: too many parts, unknown kernels', () => {
    expect(() => helpers.run('bmmAxpy', [[], [], []], here)).toThrow(/3 parts for 2 threads/);
    expect(() => helpers.run('gemm', [[]], here)).toThrow(/unknown kernel "gemm"/);
  });
});
