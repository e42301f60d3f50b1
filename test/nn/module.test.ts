import { tf } from '../../src/backend';
import { Conv2d, LayerNorm, Linear, mapSource, Module, RMSNorm, StateDictError, valueAndGrads, zeros, normal } from '../../src/nn';
import { permuteHost } from '../../src/nn/layout';
import { expectNoLeak, useTestBackend } from '../helpers';

beforeAll(useTestBackend);

class Tiny extends Module {
  readonly proj: Linear;
  readonly conv: Conv2d;
  readonly dw: Conv2d;
  readonly norm: LayerNorm;
  readonly blocks: Linear[];
  constructor() {
    super();
    this.proj = this.module('proj', new Linear(3, 4));
    this.conv = this.module('conv', new Conv2d(4, 6, 3, { padding: 1 }));
    this.dw = this.module('dw', new Conv2d(6, 6, 3, { padding: 1, groups: 6 }));
    this.norm = this.module('norm', new LayerNorm(6, { elementwiseAffine: false }));
    this.blocks = this.moduleList('blocks', [new Linear(6, 6, { bias: false }), new Linear(6, 2)]);
  }
  forward(x: tf.Tensor4D): tf.Tensor {
    return tf.tidy(() => {
      let h = this.proj.forward(x) as tf.Tensor4D;
      h = this.dw.forward(this.conv.forward(h));
      return this.blocks[1].forward(this.blocks[0].forward(this.norm.forward(h)));
    });
  }
}

test('parameter keys follow the reference naming', () => {
  const keys = new Tiny().namedParameters().map(([k]) => k);
  expect(keys).toEqual(['proj.weight', 'proj.bias', 'conv.weight', 'conv.bias', 'dw.weight', 'dw.bias', 'blocks.0.weight', 'blocks.1.weight', 'blocks.1.bias']);
});

test('parameter count needs no allocation', () => {
  const m = new Tiny();
  expect(m.numParameters()).toBe(3 * 4 + 4 + 4 * 6 * 9 + 6 + 6 * 9 + 6 + 36 + 12 + 2);
  expect(m.parameters().every((p) => !p.isMaterialized)).toBe(true);
});

test('initialize is deterministic per key and seed', () => {
  const a = new Tiny().initialize(7).stateDict();
  const b = new Tiny().initialize(7).stateDict();
  const c = new Tiny().initialize(8).stateDict();
  expect([...a.get('conv.weight')!.data]).toEqual([...b.get('conv.weight')!.data]);
  expect([...a.get('conv.weight')!.data]).not.toEqual([...c.get('conv.weight')!.data]);
});

test('stateDict -> loadStateDict round-trips through PyTorch layouts', () => {
  const a = new Tiny().initialize(1);
  const sd = a.stateDict();
  expect(sd.get('conv.weight')!.shape).toEqual([6, 4, 3, 3]);
  expect(sd.get('dw.weight')!.shape).toEqual([6, 1, 3, 3]);
  const b = new Tiny().loadStateDict(mapSource(sd));
  const x = tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const ya = a.forward(x).dataSync();
  const yb = b.forward(x).dataSync();
  expect([...yb]).toEqual([...ya]);
});

test('Linear and Conv2d match hand-computed PyTorch semantics', () => {
  const lin = new Linear(2, 3);
  // PyTorch weight [out, in] = [[1,2],[3,4],[5,6]], bias [1,1,1]
  lin.loadStateDict(mapSource(new Map([
    ['weight', { shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
    ['bias', { shape: [3], data: new Float32Array([1, 1, 1]) }],
  ])));
  expect([...lin.forward(tf.tensor2d([[1, 1]])).dataSync()]).toEqual([4, 8, 12]);
  // A 3x3 conv whose torch weight picks the centre pixel of input channel 1 into output channel 0.
  const conv = new Conv2d(2, 1, 3, { padding: 1, bias: false });
  const w = new Float32Array(18);
  w[1 * 9 + 4] = 1;
  conv.loadStateDict(mapSource(new Map([['weight', { shape: [1, 2, 3, 3], data: w }]])));
  const x = tf.tensor4d([1, 10, 2, 20, 3, 30, 4, 40], [1, 2, 2, 2]);
  expect([...conv.forward(x).dataSync()]).toEqual([10, 20, 30, 40]);
});

test('grouped (non-depthwise) convolution equals per-group convolutions', () => {
  const g = new Conv2d(4, 6, 1, { groups: 2 }).initialize(3);
  const sd = g.stateDict();
  const w = sd.get('weight')!; // [6, 2, 1, 1]
  const x = tf.randomNormal([1, 2, 2, 4], 0, 1, 'float32', 4) as tf.Tensor4D;
  const y = g.forward(x).arraySync() as number[][][][];
  const xs = x.arraySync();
  const b = sd.get('bias')!.data;
  for (let o = 0; o < 6; o++) {
    const grp = Math.floor(o / 3);
    let v = b[o];
    for (let i = 0; i < 2; i++) v += w.data[o * 2 + i] * xs[0][0][0][grp * 2 + i];
    expect(y[0][0][0][o]).toBeCloseTo(v, 5);
  }
});

test('strict loading lists every missing, unexpected and mis-shaped key at once', () => {
  const sd = new Tiny().initialize(1).stateDict();
  sd.delete('proj.bias');
  sd.set('extra.weight', { shape: [1], data: new Float32Array(1) });
  sd.set('conv.weight', { shape: [6, 4, 1, 1], data: new Float32Array(24) });
  let err: unknown;
  try {
    new Tiny().loadStateDict(mapSource(sd), { sourceName: 'model.safetensors' });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(StateDictError);
  const msg = (err as Error).message;
  expect(msg).toContain('model.safetensors');
  expect(msg).toContain('missing keys (1): proj.bias');
  expect(msg).toContain('unexpected keys (1): extra.weight');
  expect(msg).toContain('conv.weight expected [6,4,3,3] got [6,4,1,1]');
});

test('norms: LayerNorm and RMSNorm', () => {
  const x = tf.tensor2d([[1, 2, 3, 4]]);
  const ln = new LayerNorm(4, { elementwiseAffine: false, eps: 0 });
  const y = ln.forward(x).dataSync();
  const sd = Math.sqrt(1.25);
  [-1.5, -0.5, 0.5, 1.5].forEach((v, i) => expect(y[i]).toBeCloseTo(v / sd, 5));
  const rms = new RMSNorm(4, { eps: 0 }).initialize(0);
  const r = rms.forward(x).dataSync();
  const rmsv = Math.sqrt((1 + 4 + 9 + 16) / 4);
  [1, 2, 3, 4].forEach((v, i) => expect(r[i]).toBeCloseTo(v / rmsv, 5));
});

test('gradients come back keyed by checkpoint key', () => {
  const m = new Tiny().initialize(2);
  const x = tf.randomNormal([1, 3, 3, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const { value, grads } = valueAndGrads(() => m.forward(x).square().mean() as tf.Scalar, m.trainableParameters());
  expect(value.dataSync()[0]).toBeGreaterThan(0);
  expect([...grads.keys()]).toEqual(m.namedParameters().map(([k]) => k));
  expect(grads.get('conv.weight')!.shape).toEqual([3, 3, 4, 6]);
  value.dispose();
  grads.forEach((g) => g.dispose());
});

test('forward and backward leak no tensors', async () => {
  const m = new Tiny().initialize(2);
  const x = tf.randomNormal([1, 3, 3, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  await expectNoLeak(() => {
    m.forward(x).dispose();
    const { value, grads } = valueAndGrads(() => m.forward(x).square().mean() as tf.Scalar, m.trainableParameters());
    value.dispose();
    grads.forEach((g) => g.dispose());
  });
});

test('host permutation matches tf.transpose', () => {
  const data = Float32Array.from({ length: 24 }, (_, i) => i);
  const t = tf.tensor(data, [2, 3, 4]);
  for (const perm of [[2, 0, 1], [1, 2, 0], [0, 2, 1]]) {
    expect([...permuteHost(data, [2, 3, 4], perm)]).toEqual([...t.transpose(perm).dataSync()]);
  }
  void zeros;
  void normal;
});
