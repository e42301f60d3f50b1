/** The NHWC channel/space rearrangements follow PyTorch's NCHW channel orders and have gradients. */
import { tf } from '../../../src/backend';
import { channelGroupMean, pixelShuffle, pixelUnshuffle, repeatChannels, upsampleNearest } from '../../../src/models/dcae/ops';
import { expectNoLeak, useTestBackend } from '../../helpers';

beforeAll(useTestBackend);

/** A [B, H, W, C] tensor whose values encode their own index. */
function indexed(shape: [number, number, number, number]): tf.Tensor4D {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor4d(Float32Array.from({ length: n }, (_, i) => i), shape);
}

function at(data: Float32Array | Int32Array | Uint8Array, shape: number[], b: number, h: number, w: number, c: number): number {
  return data[((b * shape[1] + h) * shape[2] + w) * shape[3] + c];
}

test('pixelUnshuffle puts (c, i, j) at channel c*r*r + i*r + j, as F.pixel_unshuffle', () => {
  const x = indexed([2, 4, 6, 3]);
  const y = pixelUnshuffle(x, 2);
  expect(y.shape).toEqual([2, 2, 3, 12]);
  const xd = x.dataSync() as Float32Array;
  const yd = y.dataSync() as Float32Array;
  for (let b = 0; b < 2; b++)
    for (let h = 0; h < 2; h++)
      for (let w = 0; w < 3; w++)
        for (let c = 0; c < 3; c++)
          for (let i = 0; i < 2; i++)
            for (let j = 0; j < 2; j++) expect(at(yd, y.shape, b, h, w, c * 4 + i * 2 + j)).toBe(at(xd, x.shape, b, 2 * h + i, 2 * w + j, c));
  expect(Array.from(pixelShuffle(y, 2).dataSync())).toEqual(Array.from(xd));
  tf.dispose([x, y]);
});

test('repeatChannels repeats each channel in place (repeat_interleave), channelGroupMean averages consecutive groups', () => {
  const x = indexed([1, 2, 2, 3]);
  const r = repeatChannels(x, 4);
  expect(r.shape).toEqual([1, 2, 2, 12]);
  const rd = r.dataSync() as Float32Array;
  const xd = x.dataSync() as Float32Array;
  for (let p = 0; p < 4; p++) for (let c = 0; c < 12; c++) expect(rd[p * 12 + c]).toBe(xd[p * 3 + Math.floor(c / 4)]);
  const m = channelGroupMean(r, 4);
  expect(Array.from(m.dataSync())).toEqual(Array.from(xd));
  const g = channelGroupMean(indexed([1, 1, 1, 6]), 3);
  expect(Array.from(g.dataSync())).toEqual([1, 4]);
  tf.dispose([x, r, m, g]);
});

test('upsampleNearest copies each pixel into an r x r block', () => {
  const x = indexed([1, 2, 3, 2]);
  const y = upsampleNearest(x, 2);
  expect(y.shape).toEqual([1, 4, 6, 2]);
  const xd = x.dataSync() as Float32Array;
  const yd = y.dataSync() as Float32Array;
  for (let h = 0; h < 4; h++) for (let w = 0; w < 6; w++) for (let c = 0; c < 2; c++) expect(at(yd, y.shape, 0, h, w, c)).toBe(at(xd, x.shape, 0, h >> 1, w >> 1, c));
  tf.dispose([x, y]);
});

test('every rearrangement has a gradient (the adjoint) and leaks nothing', async () => {
  const x = tf.randomNormal([1, 4, 4, 8], 0, 1, 'float32', 7) as tf.Tensor4D;
  const ops: Array<(t: tf.Tensor4D) => tf.Tensor4D> = [
    (t) => pixelUnshuffle(t, 2),
    (t) => pixelShuffle(t, 2),
    (t) => repeatChannels(t, 3),
    (t) => channelGroupMean(t, 4),
    (t) => upsampleNearest(t, 2),
  ];
  for (const op of ops) {
    // d sum(op(x) * w) / dx for a random w equals op^T(w): check <op(x), w> == <x, grad>.
    const y = op(x);
    const w = tf.randomNormal(y.shape, 0, 1, 'float32', 3);
    const g = tf.grad((t: tf.Tensor) => op(t as tf.Tensor4D).mul(w).sum())(x);
    const lhs = y.mul(w).sum().dataSync()[0];
    const rhs = x.mul(g).sum().dataSync()[0];
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-3 * (1 + Math.abs(lhs)));
    tf.dispose([y, w, g]);
  }
  await expectNoLeak(() => {
    const g = tf.grad((t: tf.Tensor) => upsampleNearest(pixelShuffle(repeatChannels(t as tf.Tensor4D, 2), 2), 2).sum())(x);
    g.dispose();
  });
  x.dispose();
});

test('bad shapes are clear errors', () => {
  const x = tf.zeros([1, 3, 4, 2]) as tf.Tensor4D;
  expect(() => pixelUnshuffle(x, 2)).toThrow(/spatial size 3x4 is not divisible by 2/);
  expect(() => pixelShuffle(x, 2)).toThrow(/2 channels are not divisible by 4/);
  expect(() => channelGroupMean(x, 3)).toThrow(/2 channels are not divisible by group size 3/);
  x.dispose();
});
