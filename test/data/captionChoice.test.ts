/**
 * CLIP-score caption choice, as in NVlabs/Sana `diffusion/data/datasets/sana_data.py`
 * (`weighted_sample_clipscore`): candidates s >= threshold, P(i) proportional to s_i^(1/max(tau, 0.01)),
 * the best-scored caption when none passes, the first caption when none is scored.
 */
import { rngFor } from '../../src/nn/random';
import {
  Caption,
  CaptionChoiceOptions,
  captionProbabilities,
  chooseCaption,
  DEFAULT_CAPTION_CHOICE,
  validateCaptionChoice,
} from '../../src/data/captionChoice';

const caps = (...scores: Array<number | undefined>): Caption[] =>
  scores.map((s, i) => ({ key: `c${i}`, text: `caption ${i}`, ...(s === undefined ? {} : { clipScore: s }) }));

/** Draw counts of `n` seeded choices. */
function counts(captions: Caption[], options: CaptionChoiceOptions, n: number, stream = 'test'): number[] {
  const out = new Array(captions.length).fill(0);
  const rng = rngFor(1234, stream);
  for (let i = 0; i < n; i++) out[chooseCaption(captions, options, rng).index]++;
  return out;
}

/** Pearson's chi-square of observed counts against probabilities (cells with p = 0 must be empty). */
function chiSquare(observed: number[], probs: number[]): number {
  const n = observed.reduce((a, b) => a + b, 0);
  let x2 = 0;
  observed.forEach((o, i) => {
    if (probs[i] === 0) {
      if (o !== 0) x2 = Infinity;
      return;
    }
    const e = n * probs[i];
    x2 += ((o - e) * (o - e)) / e;
  });
  return x2;
}

describe('caption probabilities (exact)', () => {
  test('defaults are SANA training values: threshold 25, tau 0.1', () => {
    expect(DEFAULT_CAPTION_CHOICE).toEqual({ mode: 'clipscore', threshold: 25, temperature: 0.1 });
  });

  test('weights s^(1/tau) over the captions at or above the threshold', () => {
    const c = caps(30, 28, 20, 26, 25);
    const p = captionProbabilities(c, DEFAULT_CAPTION_CHOICE);
    const w = [30, 28, 0, 26, 25].map((s) => (s ? s ** 10 : 0));
    const sum = w.reduce((a, b) => a + b, 0);
    w.forEach((x, i) => expect(p[i]).toBeCloseTo(x / sum, 12));
    expect(p[2]).toBe(0); // 20 < 25
    expect(p[4]).toBeGreaterThan(0); // 25 >= 25: the threshold is inclusive
  });

  test('highest-scoring caption when none passes; first of equal maxima', () => {
    expect(captionProbabilities(caps(10, 22, 5), DEFAULT_CAPTION_CHOICE)).toEqual([0, 1, 0]);
    expect(captionProbabilities(caps(10, 22, 22), DEFAULT_CAPTION_CHOICE)).toEqual([0, 1, 0]);
  });

  test('first caption when nothing is scored; unscored captions are never candidates', () => {
    expect(captionProbabilities(caps(undefined, undefined), DEFAULT_CAPTION_CHOICE)).toEqual([1, 0]);
    expect(captionProbabilities(caps(undefined, 30), DEFAULT_CAPTION_CHOICE)).toEqual([0, 1]);
    expect(captionProbabilities(caps(undefined, 3), DEFAULT_CAPTION_CHOICE)).toEqual([0, 1]);
  });

  test('tau is floored at 0.01 and large scores do not overflow', () => {
    const tiny = captionProbabilities(caps(90, 89), { mode: 'clipscore', threshold: 0, temperature: 0.0001 });
    const floor = captionProbabilities(caps(90, 89), { mode: 'clipscore', threshold: 0, temperature: 0.01 });
    expect(tiny).toEqual(floor);
    // (89/90)^100 = 0.3273...
    expect(floor[1] / floor[0]).toBeCloseTo((89 / 90) ** 100, 10);
    expect(floor.every(Number.isFinite)).toBe(true);
  });

  test('softmax mode: exp(s/tau) over the same candidates', () => {
    const p = captionProbabilities(caps(26, 25.5, 3), { mode: 'softmax', threshold: 25, temperature: 1 });
    expect(p[0]).toBeCloseTo(Math.exp(0.5) / (1 + Math.exp(0.5)), 12);
    expect(p[2]).toBe(0);
  });

  test('proportion mode renormalises over the types the image has', () => {
    const c: Caption[] = [{ key: 'prompt', text: 'a' }, { key: 'short', text: 'b' }];
    expect(captionProbabilities(c, { mode: 'proportion', proportions: { prompt: 3, short: 1, vila: 4 } })).toEqual([0.75, 0.25]);
    expect(captionProbabilities(c, { mode: 'proportion', proportions: { vila: 1 } })).toEqual([1, 0]);
  });

  test('invalid options and scores give clear errors', () => {
    expect(() => validateCaptionChoice({ mode: 'clipscore', threshold: 25, temperature: 0 })).toThrow(/temperature must be a positive number/);
    expect(() => validateCaptionChoice({ mode: 'proportion', proportions: { a: -1 } })).toThrow(/proportions.a must be a non-negative/);
    expect(() => validateCaptionChoice({ mode: 'nearest' } as never)).toThrow(/mode must be one of clipscore, softmax, proportion/);
    expect(() => captionProbabilities(caps(-3, 1), { mode: 'clipscore', threshold: -5, temperature: 0.1 })).toThrow(/c0.*clip score -3.*needs scores >= 0/);
    expect(() => captionProbabilities([], DEFAULT_CAPTION_CHOICE)).toThrow(/no captions/);
  });
});

describe('caption draws (seeded, statistical)', () => {
  // Chi-square with 2 degrees of freedom: 13.82 is the 0.999 quantile.
  const CHI2_DF2_999 = 13.82;
  const N = 20000;

  test('frequencies follow s^(1/tau), and a wrong exponent is rejected', () => {
    const c = caps(30, 28, 26, 20);
    const observed = counts(c, DEFAULT_CAPTION_CHOICE, N);
    const expected = [30, 28, 26].map((s) => s ** 10);
    const z = expected.reduce((a, b) => a + b, 0);
    const p = [...expected.map((w) => w / z), 0];
    expect(chiSquare(observed, p)).toBeLessThan(CHI2_DF2_999);
    // The same draws are far from what a wrong exponent would give (s^tau, s^(1/(2 tau)), softmax(s/tau)).
    for (const wrong of [[30, 28, 26].map((s) => s ** 0.1), [30, 28, 26].map((s) => s ** 5), [30, 28, 26].map((s) => Math.exp(s / 0.1))]) {
      const zw = wrong.reduce((a, b) => a + b, 0);
      expect(chiSquare(observed, [...wrong.map((w) => w / zw), 0])).toBeGreaterThan(100 * CHI2_DF2_999);
    }
  });

  test('temperature 1 gives weights proportional to the scores', () => {
    const c = caps(40, 30, 30);
    const observed = counts(c, { mode: 'clipscore', threshold: 25, temperature: 1 }, N, 'tau1');
    expect(chiSquare(observed, [0.4, 0.3, 0.3])).toBeLessThan(CHI2_DF2_999);
  });

  test('a below-threshold caption is never picked while another passes, however many draws', () => {
    // Fashion-MNIST style: three correct phrasings and one wrong caption with a low score.
    const c = caps(31.2, 25.0, 33.9, 24.99);
    const observed = counts(c, DEFAULT_CAPTION_CHOICE, 50000, 'never');
    expect(observed[3]).toBe(0);
    expect(observed[1]).toBeGreaterThan(0);
    // Even at a high temperature (weights nearly uniform) it stays excluded.
    expect(counts(c, { mode: 'clipscore', threshold: 25, temperature: 100 }, 20000, 'never-hot')[3]).toBe(0);
    expect(counts(c, { mode: 'softmax', threshold: 25, temperature: 100 }, 20000, 'never-softmax')[3]).toBe(0);
  });

  test('each choice consumes exactly one uniform, also on the fallback paths', () => {
    const a = rngFor(7, 'x');
    const b = rngFor(7, 'x');
    chooseCaption(caps(1, 2), DEFAULT_CAPTION_CHOICE, a); // fallback: no candidate
    chooseCaption(caps(undefined), DEFAULT_CAPTION_CHOICE, a); // fallback: no score
    b.uniform();
    b.uniform();
    expect(a.uniform()).toBe(b.uniform());
  });

  test('the choice carries the caption key, text and score', () => {
    const c: Caption[] = [{ key: 'prompt', text: 'a dress', clipScore: 31 }];
    expect(chooseCaption(c, DEFAULT_CAPTION_CHOICE, rngFor(0, 'k'))).toEqual({ index: 0, key: 'prompt', text: 'a dress', clipScore: 31 });
    expect(chooseCaption([{ key: 'prompt', text: 'x' }], DEFAULT_CAPTION_CHOICE, rngFor(0, 'k')).clipScore).toBeNull();
  });
});
