/**
 * The wasm backend's composite and rerouted kernels (src/backend/kernels/wasm) against the pure-JS
 * `cpu` kernels, whatever the default backend is: matmuls with transposes and batches, convolution
 * gradients, slices/splits/unstacks copied from the heap, sums over leading axes, matrix transposes
 * and per-head products in the SIMD kernels. wasm is a regular dependency, so this runs on every machine.
 */
import { tf, initBackend } from '../../src/backend';
import { wasmHeap } from '../../src/backend/kernels/wasm/heap';
import { EXPLICIT_PAD_CASES, OP_CASES, evaluate, relativeError } from './opCases';

/** Largest error relative to the largest reference value: float32 sums reordered by another kernel. */
const TOLERANCE = 1e-5;

const CASES = [...OP_CASES.filter((c) => /^(matMul|conv|depthwise|gather|slice|split|sum over|transpose)/.test(c.name)), ...EXPLICIT_PAD_CASES];

beforeAll(async () => {
  await initBackend('wasm');
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('wasm kernels match cpu', () => {
  test.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await tf.setBackend('cpu');
    const expected = evaluate(c);
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const actual = evaluate(c);
    expect(tf.memory().numTensors).toBe(before);
    expect(actual.length).toBe(expected.length);
    const errors = actual.map((a, i) => relativeError(a, expected[i]));
    const labels = errors.map((e, i) => `${i === 0 ? 'output' : `grad ${i - 1}`}: ${e.toExponential(2)}`);
    expect({ errors: labels, ok: errors.every((e) => e <= TOLERANCE) }).toEqual({ errors: labels, ok: true });
  });

  test('transposed matmuls and convolution input gradients are routed to the fast kernels', async () => {
    await tf.setBackend('wasm');
    const kernelsOf = async (f: () => tf.Tensor) => (await tf.profile(() => tf.tidy(() => f().dataSync()))).kernels.map((k) => k.name);
    const a = tf.ones([8, 6]);
    const dy = tf.ones([1, 4, 4, 3]);
    const w = tf.ones([3, 3, 2, 3]);
    // The SIMD product kernel (with fused multiply-adds) transposes inside; else a transpose is
    // materialised and XNNPACK's untransposed GEMM runs.
    const fused = wasmHeap(tf.backend())?.fusedMultiplyAdd ?? false;
    expect(await kernelsOf(() => tf.matMul(a, a, true, false))).toEqual(fused ? ['BatchMatMul'] : expect.arrayContaining(['Transpose', 'BatchMatMul']));
    // dL/dx of a convolution is a forward convolution of the padded gradient.
    const dx = () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [1, 4, 4, 2] }) as tf.Tensor;
    expect(await kernelsOf(dx)).toEqual(expect.arrayContaining(['Conv2D']));
    tf.dispose([a, dy, w]);
  });

  test('per-head products, matrix transposes and depthwise filter gradients run in one kernel each (the SIMD kernels)', async () => {
    await tf.setBackend('wasm');
    const kernelsOf = async (f: () => tf.Tensor) => (await tf.profile(() => tf.tidy(() => f().dataSync()))).kernels.map((k) => k.name);
    const q = tf.ones([2, 4, 64, 8]);
    const kv = tf.ones([2, 4, 8, 8]);
    expect(await kernelsOf(() => tf.matMul(q, kv))).toEqual(['BatchMatMul']);
    expect(await kernelsOf(() => tf.matMul(q, q, true, false))).toEqual(['BatchMatMul']);
    expect(await kernelsOf(() => tf.matMul(q, kv, false, true))).toEqual(['BatchMatMul']);
    expect(await kernelsOf(() => q.reshape([512, 8]).transpose())).toEqual(['Reshape', 'Transpose']);
    const x = tf.ones([2, 6, 6, 8]);
    const dy = tf.ones([2, 6, 6, 8]);
    const dw = () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dilations: 1, filterShape: [3, 3, 8, 1] }) as tf.Tensor;
    expect(await kernelsOf(dw)).toEqual(['DepthwiseConv2dNativeBackpropFilter']);
    tf.dispose([q, kv, x, dy]);
  });
});
