/**
 * The fused AdamW kernel on wasm (src/backend/kernels/wasm/adamW.ts): the same operations in the same
 * order as the element-wise rule, so the optimizer's trajectory on wasm equals the pure-JS `cpu`
 * backend's to the bit, for sizes off the vector width, split over threads, and either form of lerp.
 */
import { tf, initBackend, fusedAdamW } from '../../src/backend';
import { Parameter, zeros } from '../../src/nn';
import { AdamW } from '../../src/training/optim/adamw';

beforeAll(async () => {
  await initBackend('wasm');
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

const SHAPES = [[3], [37, 5], [300, 261]];

function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 3.1 + i * 0.61) * (1 + (i % 7)));
}

/** Parameters after three AdamW steps with fixed gradients, on the current backend. */
function trajectory(options: ConstructorParameters<typeof AdamW>[1]): Float32Array[] {
  const params = SHAPES.map((shape, k) => {
    const p = new Parameter(shape, 'identity', zeros);
    p.assignHost(values(tf.util.sizeFromShape(shape), k));
    return [`p${k}`, p] as [string, Parameter];
  });
  const opt = new AdamW(params, options);
  for (let t = 1; t <= 3; t++) {
    const grads = new Map(params.map(([name, p], k) => [name, tf.tensor(values(p.value.size, 10 * t + k), p.shape)]));
    opt.step(grads, 1e-2);
    tf.dispose([...grads.values()]);
  }
  const out = params.map(([, p]) => Float32Array.from(p.value.dataSync()));
  opt.dispose();
  params.forEach(([, p]) => p.dispose());
  return out;
}

describe('fused AdamW on wasm', () => {
  test.each([
    ['weight decay, lerp from the moment (beta1 0.9)', { betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01 }],
    ['no decay, lerp from the gradient (beta1 0.3)', { betas: [0.3, 0.99] as [number, number], eps: 1e-6, weightDecay: 0 }],
  ])('%s: identical to the element-wise rule on cpu', async (_label, options) => {
    await tf.setBackend('cpu');
    const expected = trajectory(options);
    await tf.setBackend('wasm');
    expect(tf.getKernel('SanaApplyAdamW', 'wasm')).toBeDefined();
    const before = tf.memory().numTensors;
    const actual = trajectory(options);
    expect(tf.memory().numTensors).toBe(before);
    actual.forEach((a, k) => expect(Array.from(a)).toEqual(Array.from(expected[k])));
  });

  test('leaves its inputs as they were', async () => {
    await tf.setBackend('wasm');
    const [w, m, v, g] = [1, 2, 3, 4].map((seed) => tf.tensor(values(1001, seed).map(Math.abs), [1001]));
    const copies = [w, m, v, g].map((x) => x.dataSync().slice());
    const out = fusedAdamW(w, m, v, g, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, t: 2 })!;
    expect(out).not.toBeNull();
    [w, m, v, g].forEach((x, i) => expect(Array.from(x.dataSync())).toEqual(Array.from(copies[i])));
    tf.dispose([...out, w, m, v, g]);
  });
});
