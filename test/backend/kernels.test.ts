/**
 * The kernels the models use, forward and backward, on the backend `initBackend()` picks (native
 * TensorFlow, wasm or cpu), against the pure-JS `cpu` kernels. Passes trivially where cpu is all there is.
 */
import { tf, initBackend } from '../../src/backend';
import { OP_CASES, evaluate, relativeError } from './opCases';

/** Largest error relative to the largest reference value: float32 sums reordered by another kernel. */
const TOLERANCE = 1e-5;

let target = 'cpu';

beforeAll(async () => {
  target = (await initBackend()).tfName;
});

describe('kernels on the default backend match cpu', () => {
  test.each(OP_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await tf.setBackend('cpu');
    const expected = evaluate(c);
    await tf.setBackend(target);
    const before = tf.memory().numTensors;
    const actual = evaluate(c);
    expect(tf.memory().numTensors).toBe(before);
    expect(actual.length).toBe(expected.length);
    const errors = actual.map((a, i) => relativeError(a, expected[i]));
    const labels = errors.map((e, i) => `${i === 0 ? 'output' : `grad ${i - 1}`}: ${e.toExponential(2)}`);
    expect({ backend: target, errors: labels, ok: errors.every((e) => e <= TOLERANCE) }).toEqual({ backend: target, errors: labels, ok: true });
  });
});
