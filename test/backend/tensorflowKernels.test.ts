/**
 * The native TensorFlow shortcuts (src/backend/kernels/tensorflow): same-shape reshapes share data,
 * and the kept shape constants stay bounded however many distinct shapes a process sees; the fused
 * AdamW kernel (src/backend/fusedAdamW.ts) leaves its inputs untouched and leaks nothing. Runs where
 * the default backend is native TensorFlow; elsewhere there is nothing to check.
 */
import { tf, initBackend, fusedAdamW } from '../../src/backend';

let native = false;
beforeAll(async () => {
  native = (await initBackend()).tfName === 'tensorflow';
});

test('a same-shape reshape shares its input data and frees nothing early', () => {
  if (!native) return;
  const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  const y = x.reshape([2, -1]);
  expect(y.dataId).toBe(x.dataId);
  x.dispose();
  expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
  y.dispose();
});

test('shape constants are kept up to a bound, then made and freed per call', () => {
  if (!native) return;
  const buffers = () => tf.engine().backend.numDataIds();
  const reshapeMany = (from: number, to: number) => {
    for (let n = from; n < to; n++) tf.tidy(() => tf.zeros([n]).reshape([1, n]).dataSync());
  };
  reshapeMany(1, 4200); // fills the kept set
  const before = buffers();
  reshapeMany(4200, 5200); // 1,000 new shapes past the bound
  expect(buffers()).toBe(before);
});

test('fused AdamW: the element-wise rule to rounding, inputs untouched, no tensor or buffer leaked', () => {
  if (!native) return;
  const n = 1000;
  const values = (seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 0.37));
  const [w, m, g] = [values(1), values(2).map((x) => x * 0.1), values(3)];
  const v = values(4).map((x) => x * x * 0.01);
  const [wt, mt, vt, gt] = [w, m, v, g].map((a) => tf.tensor1d(a));
  const step = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, t: 3 };
  const before = [tf.memory().numTensors, tf.engine().backend.numDataIds()];
  const out = fusedAdamW(wt, mt, vt, gt, step);
  expect(out).not.toBeNull();
  const [w2, m2, v2] = out!.map((t) => t.dataSync());
  // Element-wise reference (torch's order) in double precision.
  const bc1 = 1 - step.beta1 ** step.t;
  const bc2 = 1 - step.beta2 ** step.t;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const mi = m[i] + (g[i] - m[i]) * (1 - step.beta1);
    const vi = step.beta2 * v[i] + (1 - step.beta2) * g[i] * g[i];
    const wi = w[i] * (1 - step.lr * step.weightDecay) - (step.lr / bc1) * mi / (Math.sqrt(vi) / Math.sqrt(bc2) + step.eps);
    expect(Math.abs(m2[i] - mi)).toBeLessThan(1e-7);
    expect(Math.abs(v2[i] - vi) / vi).toBeLessThan(2e-5); // float32 1 - beta2 (see fusedAdamW.ts)
    worst = Math.max(worst, Math.abs(w2[i] - wi));
  }
  expect(worst).toBeLessThan(1e-6); // a step moves w by ~1e-2
  // The kernel updates variables in place: the inputs must still hold their values.
  expect([wt, mt, vt, gt].map((t) => Array.from(t.dataSync()))).toEqual([w, m, v, g].map((a) => Array.from(a)));
  tf.dispose(out!);
  // Without weight decay the weight itself goes into the variable: still copied before the update.
  tf.dispose(fusedAdamW(wt, mt, vt, gt, { ...step, weightDecay: 0 })!);
  expect(Array.from(wt.dataSync())).toEqual(Array.from(w));
  expect([tf.memory().numTensors, tf.engine().backend.numDataIds()]).toEqual(before);
  tf.dispose([wt, mt, vt, gt]);
});
