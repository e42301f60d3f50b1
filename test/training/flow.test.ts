/**
 * The rectified-flow objective: golden parity (noising, velocity target, shift, diffusers' training
 * table), timestep sampling, caption dropout, LR schedules.
 */
import { tf, Tensor2D, Tensor3D } from '../../src/backend';
import { rngFor } from '../../src/nn';
import { useTestBackend, expectGoldenPass, expectNoLeak } from '../helpers';
import {
  DEFAULT_TIMESTEP_SAMPLING, flowMatchTrainingTable, noisyInput, sampleTrainingSigmas, shiftSigma, velocityTarget, flowMatchingLoss,
} from '../../src/training/flow';
import { captionDropoutFlags, dropCaptions } from '../../src/training/objectives';
import { learningRate } from '../../src/training/lrSchedule';

beforeAll(useTestBackend);

test('golden rf_training_target', async () => {
  await expectGoldenPass('rf_training_target');
});

test('shift: fixes 0 and 1, k = 3 maps 0.5 to 0.75, k = 1 is the identity', () => {
  expect(shiftSigma(0, 3)).toBe(0);
  expect(shiftSigma(1, 3)).toBe(1);
  expect(shiftSigma(0.5, 3)).toBe(0.75);
  expect(shiftSigma(0.37, 1)).toBe(Math.fround(0.37));
});

test('training table: descending, 1000 entries, first sigma 1, last 1/1000 shifted', () => {
  const { sigmas, timesteps } = flowMatchTrainingTable(1000, 3);
  expect(sigmas.length).toBe(1000);
  expect(sigmas[0]).toBe(1);
  expect(timesteps[0]).toBe(1000);
  expect(sigmas[999]).toBe(shiftSigma(0.001, 3));
  for (let i = 1; i < 1000; i++) expect(sigmas[i]).toBeLessThan(sigmas[i - 1]);
});

test('timestep sampling: seeded, in (0, 1), shifted towards noise, discrete picks table entries', () => {
  const s = { ...DEFAULT_TIMESTEP_SAMPLING, flowShift: 3 };
  const a = sampleTrainingSigmas(rngFor(1, 'timesteps', 7), 4000, s);
  const b = sampleTrainingSigmas(rngFor(1, 'timesteps', 7), 4000, s);
  expect(Array.from(a.sigmas)).toEqual(Array.from(b.sigmas));
  expect(a.sigmas.every((x) => x > 0 && x < 1)).toBe(true);
  // logit-normal(0, 1) has median 0.5; shift 3 moves the median to 0.75.
  const sorted = Array.from(a.sigmas).sort((x, y) => x - y);
  expect(sorted[2000]).toBeGreaterThan(0.7);
  expect(sorted[2000]).toBeLessThan(0.8);
  for (let i = 0; i < 10; i++) expect(a.timesteps[i]).toBe(Math.fround(a.sigmas[i] * 1000));
  const table = new Set(flowMatchTrainingTable(1000, 3).sigmas);
  const d = sampleTrainingSigmas(rngFor(1, 'timesteps', 7), 100, { ...s, discrete: true });
  expect(Array.from(d.sigmas).every((x) => table.has(x))).toBe(true);
  const u = sampleTrainingSigmas(rngFor(2, 't', 0), 4000, { ...s, weightingScheme: 'uniform', flowShift: 1 });
  const mean = u.sigmas.reduce((x, y) => x + y, 0) / 4000;
  expect(Math.abs(mean - 0.5)).toBeLessThan(0.02);
});

test('noising endpoints: sigma 0 gives the data, sigma 1 the noise, the target is noise - x0', () => {
  const x0 = tf.tensor4d([1, 2, 3, 4], [2, 1, 1, 2]);
  const noise = tf.tensor4d([5, 6, 7, 8], [2, 1, 1, 2]);
  const xt = noisyInput(x0, noise, Float32Array.from([0, 1]));
  expect(Array.from(xt.dataSync())).toEqual([1, 2, 7, 8]);
  const target = velocityTarget(x0, noise);
  expect(Array.from(target.dataSync())).toEqual([4, 4, 4, 4]);
  const loss = flowMatchingLoss(target, tf.zerosLike(target));
  expect(loss.dataSync()[0]).toBe(16);
  tf.dispose([x0, noise, xt, target, loss]);
});

test('caption dropout: seeded flags at the given rate; dropped samples get the null caption', async () => {
  const flags = Array.from({ length: 200 }, (_, i) => captionDropoutFlags(3, i, 10, 0.1)).flat();
  const rate = flags.filter(Boolean).length / flags.length;
  expect(rate).toBeGreaterThan(0.07);
  expect(rate).toBeLessThan(0.13);
  expect(captionDropoutFlags(3, 5, 10, 0.1)).toEqual(captionDropoutFlags(3, 5, 10, 0.1));
  const embeds = tf.tensor3d([1, 1, 1, 1, 2, 2, 2, 2], [2, 2, 2]) as Tensor3D;
  const mask = tf.tensor2d([1, 1, 1, 0], [2, 2], 'int32') as Tensor2D;
  const nul = { embeds: tf.tensor2d([9, 9, 8, 8], [2, 2]) as Tensor2D, mask: tf.tensor1d([1, 0], 'int32') };
  const out = dropCaptions(embeds, mask, nul, [false, true]);
  expect(Array.from(out.embeds.dataSync())).toEqual([1, 1, 1, 1, 9, 9, 8, 8]);
  expect(Array.from(out.mask.dataSync())).toEqual([1, 1, 1, 0]);
  expect(out.mask.dtype).toBe('int32');
  tf.dispose([out.embeds, out.mask]);
  await expectNoLeak(() => tf.dispose(Object.values(dropCaptions(embeds, mask, nul, [true, false]))));
  const wrong = { embeds: tf.zeros([3, 2]) as Tensor2D, mask: tf.ones([3]) as tf.Tensor1D };
  expect(() => dropCaptions(embeds, mask, wrong, [true, true])).toThrow(/null caption embedding is \[3, 2\], batch captions are \[2, 2\]/);
  tf.dispose([embeds, mask, nul.embeds, nul.mask, wrong.embeds, wrong.mask]);
});

test('LR schedule: linear warmup from 0 (diffusers convention), then constant or cosine to min_lr', () => {
  const c = { type: 'constant' as const, baseLr: 1e-3, warmupSteps: 4, totalSteps: 10, minLr: 0 };
  expect([0, 1, 2, 3, 4, 9].map((k) => learningRate(c, k))).toEqual([0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3]);
  const cos = { ...c, type: 'cosine' as const, minLr: 1e-4 };
  expect(learningRate(cos, 4)).toBeCloseTo(1e-3, 12);
  expect(learningRate(cos, 7)).toBeCloseTo(1e-4 + 0.9e-3 * 0.5, 12); // halfway through the decay
  expect(learningRate(cos, 10)).toBeCloseTo(1e-4, 12);
});
