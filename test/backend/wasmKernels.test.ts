/**
 * The wasm backend's composite and rerouted kernels (src/backend/kernels/wasm) against the pure-JS
 * `cpu` kernels, whatever the default backend is: matmuls with transposes and batches, convolution
 * gradients. wasm is a regular dependency, so this runs on every machine.
 */
import { tf, initBackend } from '../../src/backend';
import { EXPLICIT_PAD_CASES, OP_CASES, evaluate, relativeError } from './opCases';

/** Largest error relative to the largest reference value: float32 sums reordered by another kernel. */
const TOLERANCE = 1e-5;

const CASES = [...OP_CASES.filter((c) => /^(matMul|conv|depthwise|gather)/.test(c.name)), ...EXPLICIT_PAD_CASES];

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

  test('the matmul and convolution-gradient kernels are the composites', () => {
    // A transposed 1024-wide matmul takes seconds on the original kernel and well under one here.
    const a = tf.ones([512, 512]);
    const t0 = performance.now();
    tf.tidy(() => tf.matMul(a, a, true, true).dataSync());
    a.dispose();
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});
