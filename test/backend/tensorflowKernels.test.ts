/**
 * The native TensorFlow shortcuts (src/backend/kernels/tensorflow): same-shape reshapes share data,
 * and the kept shape constants stay bounded however many distinct shapes a process sees. Runs where
 * the default backend is native TensorFlow; elsewhere there is nothing to check.
 */
import { tf, initBackend } from '../../src/backend';

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
