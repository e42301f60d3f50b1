/**
 * AdamW, CAME and global-norm clipping against reference trajectories (../shared/golden optim_adamw,
 * optim_came: torch 2.13 AdamW, yangluo7/CAME and SANA's CAMEWrapper) and against small trajectories
 * computed by hand from the published update rules; state save/restore; layout handling; leaks.
 */
import { tf, Tensor } from '../../src/backend';
import { Parameter, zeros, tfToTorch } from '../../src/nn';
import { Layout, torchToTfHost } from '../../src/nn/layout';
import { useTestBackend, expectGoldenPass, expectNoLeak, goldenCase } from '../helpers';
import { AdamW } from '../../src/training/optim/adamw';
import { CAME } from '../../src/training/optim/came';
import { Optimizer } from '../../src/training/optim/optimizer';
import { clipGradNorm } from '../../src/training/optim/clipGrad';
import { torchAxesInMemory } from '../../src/training/optim/layoutAxes';
import { loadCase } from '../../src/golden/case';
import { toFloat32 } from '../../src/io/safetensors';

beforeAll(useTestBackend);

function param(torchShape: number[], layout: Layout, torchValues: number[]): Parameter {
  const p = new Parameter(torchShape, layout, zeros);
  p.assignHost(torchToTfHost(layout, torchShape, Float32Array.from(torchValues)));
  return p;
}

function torchValues(p: Parameter): number[] {
  return tf.tidy(() => Array.from(tfToTorch(p.layout, p.value).dataSync()));
}

function grad(p: Parameter, torchValues: number[]): Map<string, Tensor> {
  return new Map([['w', tf.tensor(torchToTfHost(p.layout, p.torchShape, Float32Array.from(torchValues)), p.shape)]]);
}

function stepWith(opt: Optimizer, p: Parameter, g: number[], lr: number): void {
  const grads = grad(p, g);
  opt.step(grads, lr);
  tf.dispose([...grads.values()]);
}

test('golden optim_adamw: torch.optim.AdamW trajectories, with and without clip_grad_norm_', async () => {
  await expectGoldenPass('optim_adamw');
});

test('golden optim_came: official CAME and SANA CAMEWrapper trajectories', async () => {
  await expectGoldenPass('optim_came');
});

test('AdamW follows the torch.optim.AdamW update rule (hand-computed float64 reference)', () => {
  // Reference: the algorithm in the torch.optim.AdamW documentation, evaluated in float64 with numpy:
  // p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), lr 0.1, wd 0.1, betas (0.9, 0.999), eps 1e-8.
  const p = param([2], 'identity', [1.0, -2.0]);
  const opt = new AdamW([['w', p]], { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 });
  stepWith(opt, p, [0.5, 0.1], 0.1);
  expectClose(torchValues(p), [0.890000002, -2.07999999000000], 2e-7);
  stepWith(opt, p, [-0.25, 0.3], 0.1);
  expectClose(torchValues(p), [0.8544662986878463, -2.15097809789441], 2e-7);
  opt.dispose();
  p.dispose();
});

test('CAME (SANA factoring) follows the published update rule on a Linear weight (hand-computed)', () => {
  // Reference: the CAME update of Luo et al. 2023 as in yangluo7/CAME (no bias correction, RMS clip 1.0),
  // evaluated in float64 with numpy on a [2, 3] (torch layout) weight, betas (0.9, 0.999, 0.9999),
  // eps (1e-30, 1e-16), lr 1e-3. Values below are the torch-layout weights after each step.
  const p = param([2, 3], 'linear', [0.5, -0.25, 1.0, 0.75, 0.0, -1.5]);
  const opt = new CAME([['w', p]], { factoring: 'sana' });
  expect(opt.isFactored('w')).toBe(true);
  stepWith(opt, p, [0.1, -0.2, 0.3, 0.4, 0.5, -0.6], 1e-3);
  expectClose(torchValues(p), [0.49167783704969553, -0.23874264111060117, 0.9874803080680009, 0.7370043018871993, -0.010987020332611333, -1.4902247686217456], 2e-6);
  stepWith(opt, p, [-0.3, 0.1, 0.2, 0.05, -0.4, 0.6], 1e-3);
  expectClose(torchValues(p), [0.4999780826914901, -0.23548976143592532, 0.9743740622925388, 0.7287774151774487, -0.011483389924721693, -1.4908472828292205], 2e-6);
  opt.dispose();
  p.dispose();
});

test('clip_grad_norm_: total = norm of per-tensor norms, coef = max_norm / (total + 1e-6)', () => {
  // ||(3, 4)|| = 5, ||(12)|| = 12, total = 13; max_norm 1 -> scale 1 / (13 + 1e-6).
  const grads = new Map<string, Tensor>([['a', tf.tensor1d([3, 4])], ['b', tf.tensor1d([12])]]);
  const { grads: clipped, totalNorm } = clipGradNorm(grads, 1.0);
  expect(totalNorm.dataSync()[0]).toBeCloseTo(13, 5);
  expectClose(Array.from(clipped.get('b')!.dataSync()), [12 * 0.07692307100591762], 1e-6);
  const { grads: same, totalNorm: n2 } = clipGradNorm(grads, 100);
  expect(Array.from(same.get('a')!.dataSync())).toEqual([3, 4]); // below the threshold: unchanged
  tf.dispose([...grads.values(), ...clipped.values(), ...same.values(), totalNorm, n2]);
});

test('CAME optimizer state matches the reference state after every step (debug tensors)', () => {
  const c = loadCase(goldenCase('optim_came'));
  for (const [variant, factoring] of [['came', 'official'], ['came_sana', 'sana']] as const) {
    const params: Array<[string, Parameter]> = (c.spec.param_order as string[]).map((name) => {
      const init = c.io.get(`init.${name}`)!;
      const layout: Layout = init.shape.length === 2 ? 'linear' : init.shape.length === 4 ? 'conv2d' : 'identity';
      return [name, param(init.shape, layout, Array.from(toFloat32(init, name)))];
    });
    const opt = new CAME(params, { factoring });
    for (let t = 0; t < Number(c.spec.steps); t++) {
      const grads = new Map<string, Tensor>();
      for (const [name, p] of params) {
        const g = toFloat32(c.io.get(`grads.${name}`)!, name);
        const n = p.size;
        grads.set(name, tf.tensor(torchToTfHost(p.layout, p.torchShape, g.subarray(t * n, (t + 1) * n)), p.shape));
      }
      opt.step(grads, 1e-4);
      tf.dispose([...grads.values()]);
      for (const [name] of params) {
        for (const slot of opt.slotsOf(name).keys()) {
          const ref = c.io.get(`debug.${variant}.${slot}.${name}`);
          expect(ref).toBeDefined();
          const n = ref!.data.length / ref!.shape[0];
          const want = toFloat32(ref!, slot).subarray(t * n, (t + 1) * n);
          const got = opt.slotToTorch(name, slot);
          expect(got.shape).toEqual(ref!.shape.slice(1));
          const g = got.dataSync();
          got.dispose();
          // Relative per element: the second-moment statistics span 1e-30 (eps) to 1e2. The signed first
          // moment passes through zero, where float32 sums in another order (the pure-JS backend) leave
          // a few 1e-8 of absolute error: its scale floor is a thousandth of its largest entry.
          const floor = slot === 'exp_avg' ? 1e-3 * Math.max(...Array.from(want, Math.abs)) : 1e-30;
          let worst = 0;
          for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(g[i] - want[i]) / Math.max(Math.abs(want[i]), floor));
          expect(worst).toBeLessThan(1e-4);
        }
      }
    }
    opt.dispose();
    for (const [, p] of params) p.dispose();
  }
});

test('which tensors CAME factors: official = rank >= 2, SANA = Linear and 1x1 conv only', () => {
  const shapes: Array<[number[], Layout]> = [[[7], 'identity'], [[5, 6], 'linear'], [[4, 3, 3, 3], 'conv2d'], [[6, 4, 1, 1], 'conv2d'], [[2, 3, 4], 'identity']];
  const params = shapes.map(([s, l], i) => [`p${i}`, new Parameter(s, l, zeros)] as [string, Parameter]);
  const official = new CAME(params, { factoring: 'official' });
  const sana = new CAME(params, { factoring: 'sana' });
  expect(params.map(([k]) => official.isFactored(k))).toEqual([false, true, true, true, true]);
  expect(params.map(([k]) => sana.isFactored(k))).toEqual([false, true, false, true, false]);
});

test('memory axes of each PyTorch axis agree with the layout conversion', () => {
  const cases: Array<[Layout, number[]]> = [['identity', [2, 3, 4]], ['linear', [3, 5]], ['conv2d', [4, 3, 2, 5]], ['depthwise', [6, 1, 3, 3]]];
  for (const [layout, torchShape] of cases) {
    const n = torchShape.reduce((a, b) => a * b, 1);
    const torchData = Float32Array.from({ length: n }, (_, i) => i);
    const mem = tf.tensor(torchToTfHost(layout, torchShape, torchData), new Parameter(torchShape, layout, zeros).shape);
    const back = mem.transpose(torchAxesInMemory(layout, torchShape.length));
    expect(back.shape).toEqual(torchShape);
    expect(Array.from(back.dataSync())).toEqual(Array.from(torchData));
    tf.dispose([mem, back]);
  }
});

test.each(['adamw', 'came'] as const)('%s: saved state restores an identical continuation', (kind) => {
  const make = () => {
    const p = param([2, 3], 'linear', [0.5, -0.25, 1.0, 0.75, 0.0, -1.5]);
    const opt = kind === 'adamw' ? new AdamW([['w', p]]) : new CAME([['w', p]]);
    return { p, opt };
  };
  const g = (t: number) => [0.1, -0.2, 0.3, 0.4, 0.5, -0.6].map((x) => x * (t + 1) * (t % 2 ? -1 : 1));
  const a = make();
  for (let t = 0; t < 4; t++) stepWith(a.opt, a.p, g(t), 1e-2);

  const b = make();
  for (let t = 0; t < 2; t++) stepWith(b.opt, b.p, g(t), 1e-2);
  const state = b.opt.getState();
  const weights = torchValues(b.p);
  b.opt.dispose();
  const c = make();
  c.p.assignHost(torchToTfHost('linear', [2, 3], Float32Array.from(weights)));
  c.opt.setState(state, 'test state');
  for (let t = 2; t < 4; t++) stepWith(c.opt, c.p, g(t), 1e-2);
  expect(torchValues(c.p)).toEqual(torchValues(a.p));
  for (const x of [a, b, c]) {
    x.opt.dispose();
    x.p.dispose();
  }
});

test('restoring a state that does not fit names every problem', () => {
  const p = param([2, 3], 'linear', [0, 0, 0, 0, 0, 0]);
  const opt = new AdamW([['w', p]]);
  stepWith(opt, p, [1, 1, 1, 1, 1, 1], 1e-3);
  const state = opt.getState();
  state.tensors.get('w.exp_avg')!.shape = [2, 3];
  state.tensors.delete('w.exp_avg_sq');
  expect(() => opt.setState(state, 'ck/optimizer.safetensors')).toThrow(/ck\/optimizer.safetensors: does not fit.*"w.exp_avg" has shape \[2,3\], expected \[3,2\].*missing "w.exp_avg_sq"/);
  expect(() => new CAME([['w', p]]).setState(state, 'x')).toThrow(/saved by optimizer "adamw", this run uses "came"/);
  opt.dispose();
  p.dispose();
});

test.each(['adamw', 'came'] as const)('%s: no tensor leak across steps', async (kind) => {
  const p = param([4, 3, 3, 3], 'conv2d', Array.from({ length: 108 }, (_, i) => Math.sin(i)));
  const opt = kind === 'adamw' ? new AdamW([['w', p]]) : new CAME([['w', p]], { factoring: 'official' });
  await expectNoLeak(() => stepWith(opt, p, Array.from({ length: 108 }, (_, i) => Math.cos(i)), 1e-3));
  opt.dispose();
  p.dispose();
});

function expectClose(got: number[], want: number[], atol: number): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    if (Math.abs(g - want[i]) > atol) throw new Error(`index ${i}: got ${g}, want ${want[i]} (atol ${atol})`);
  });
}

describe('AdamW over several parameters (updated as one flat bucket)', () => {
  const shapes: Array<[number[], Layout]> = [[[3, 2], 'linear'], [[4], 'identity'], [[2, 2, 3, 3], 'conv2d']];
  const make = () => {
    const params = shapes.map(([s, layout], j) => {
      const n = s.reduce((a, b) => a * b, 1);
      return [`p${j}`, param(s, layout, Array.from({ length: n }, (_, i) => Math.sin(i + 3 * j)))] as [string, Parameter];
    });
    return { params, opt: new AdamW(params, { weightDecay: 0.05 }) };
  };
  const gradsAt = (params: Array<[string, Parameter]>, t: number, skip?: string) =>
    new Map(params.filter(([k]) => k !== skip).map(([k, p], j) => [k, tf.tidy(() => tf.sin(tf.range(0, p.size).add(t * 7 + j)).mul(t + 1).reshape(p.shape))]));
  const run = (opt: Optimizer, params: Array<[string, Parameter]>, t: number, skip?: string) => {
    const g = gradsAt(params, t, skip);
    opt.step(g, 1e-2);
    tf.dispose([...g.values()]);
  };
  const values = (params: Array<[string, Parameter]>) => params.map(([, p]) => torchValues(p));

  test('equals separate per-parameter optimizers, also across a skipped gradient and a save/restore', () => {
    const joint = make();
    const alone = make();
    const single = alone.params.map(([k, p]) => new AdamW([[k, p]], { weightDecay: 0.05 }));
    for (let t = 0; t < 5; t++) {
      // Step 2 leaves p1 without a gradient: that bucket falls back to per-parameter updates.
      const skip = t === 2 ? 'p1' : undefined;
      run(joint.opt, joint.params, t, skip);
      const g = gradsAt(alone.params, t, skip);
      single.forEach((o, j) => {
        const key = alone.params[j][0];
        if (g.has(key)) o.step(new Map([[key, g.get(key)!]]), 1e-2);
      });
      tf.dispose([...g.values()]);
      if (t === 3) {
        const state = joint.opt.getState();
        joint.opt.setState(state, 'state');
      }
    }
    expect(values(joint.params)).toEqual(values(alone.params));
    for (const [k] of joint.params) {
      for (const slot of ['exp_avg', 'exp_avg_sq']) {
        const j = Number(k.slice(1));
        expect(Array.from(joint.opt.slotToTorch(k, slot).dataSync())).toEqual(Array.from(single[j].slotToTorch(k, slot).dataSync()));
      }
    }
    joint.opt.dispose();
    single.forEach((o) => o.dispose());
    [...joint.params, ...alone.params].forEach(([, p]) => p.dispose());
  });

  test('no tensor leak across bucketed steps', async () => {
    const { params, opt } = make();
    let t = 0;
    await expectNoLeak(() => run(opt, params, t++));
    opt.dispose();
    params.forEach(([, p]) => p.dispose());
  });
});
