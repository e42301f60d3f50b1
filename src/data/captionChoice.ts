/**
 * Which of an image's captions to train on, drawn by CLIP score.
 *
 * Mirrors the caption selection of NVlabs/Sana `diffusion/data/datasets/sana_data.py`
 * (`weighted_sample_clipscore` and `weighted_sample_fix_prob`); the rule is kept exactly, the code is ours:
 * - `clipscore` (SANA's default): the candidates are the captions whose score is >= `threshold`; candidate
 *   i is drawn with probability proportional to s_i^(1/tau), tau floored at 0.01 as SANA does. When no
 *   scored caption passes, the highest-scoring one is used (the first of equal maxima); when the image has
 *   no scores at all, its first caption.
 * - `softmax`: the same candidates and fallbacks, drawn with probability softmax(s/tau).
 * - `proportion`: caption types drawn with fixed weights (`{prompt: 0.7, short: 0.3}`), renormalised over
 *   the types this image has. (SANA draws over all configured types and falls back to its default prompt
 *   when the drawn type is absent; renormalising keeps the configured ratios between the types present.)
 *
 * Probabilities are computed in log space, so tau = 0.01 with scores near 100 does not overflow.
 */
import type { Rng } from '../nn/random';

/** One caption of an image. `key` is its type (`prompt`, `short`, ...); scores are CLIP scores (100 x cosine). */
export interface Caption {
  key: string;
  text: string;
  clipScore?: number;
}

export type CaptionChoiceOptions =
  | { mode: 'clipscore' | 'softmax'; threshold: number; temperature: number }
  | { mode: 'proportion'; proportions: Readonly<Record<string, number>> };

/** SANA's training configs: threshold 25 on CLIP score, temperature 0.1. */
export const DEFAULT_CAPTION_CHOICE: CaptionChoiceOptions = { mode: 'clipscore', threshold: 25.0, temperature: 0.1 };

/** SANA clamps the temperature to this before taking 1/tau. */
const MIN_TEMPERATURE = 0.01;

export interface CaptionChoice {
  /** Index into the image's caption list. */
  index: number;
  key: string;
  text: string;
  /** The chosen caption's score, or null when it has none. */
  clipScore: number | null;
}

/** Checks the option object; errors name the field and what was expected. */
export function validateCaptionChoice(options: CaptionChoiceOptions): CaptionChoiceOptions {
  if (options.mode === 'clipscore' || options.mode === 'softmax') {
    if (!Number.isFinite(options.threshold)) throw new Error(`caption choice: threshold must be a finite number, got ${options.threshold}`);
    if (!Number.isFinite(options.temperature) || options.temperature <= 0) {
      throw new Error(`caption choice: temperature must be a positive number, got ${options.temperature}`);
    }
    return options;
  }
  if (options.mode === 'proportion') {
    const entries = Object.entries(options.proportions ?? {});
    if (entries.length === 0) throw new Error('caption choice: proportions must name at least one caption type');
    for (const [k, v] of entries) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`caption choice: proportions.${k} must be a non-negative number, got ${v}`);
    }
    if (!entries.some(([, v]) => v > 0)) throw new Error('caption choice: proportions must have at least one positive weight');
    return options;
  }
  throw new Error(`caption choice: mode must be one of clipscore, softmax, proportion, got ${(options as { mode: unknown }).mode}`);
}

/** Normalises log-weights into probabilities (max subtracted first). Entries of -Infinity get 0. */
function fromLogWeights(logW: number[]): number[] {
  const max = Math.max(...logW);
  const w = logW.map((l) => (l === -Infinity ? 0 : Math.exp(l - max)));
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / sum);
}

/**
 * The exact probability of each caption under `options` (length = captions.length, sums to 1).
 * Throws when a candidate score cannot be weighted (a negative score raised to 1/tau).
 */
export function captionProbabilities(captions: readonly Caption[], options: CaptionChoiceOptions): number[] {
  if (captions.length === 0) throw new Error('caption choice: the image has no captions');
  const probs = new Array<number>(captions.length).fill(0);

  if (options.mode === 'proportion') {
    const present = captions.map((c) => options.proportions[c.key] ?? 0);
    const total = present.reduce((a, b) => a + b, 0);
    if (total <= 0) {
      probs[0] = 1; // none of the configured types: the image's first caption
      return probs;
    }
    return present.map((w) => w / total);
  }

  // 1. Candidates: scored captions at or above the threshold.
  const candidates: number[] = [];
  let best = -1;
  captions.forEach((c, i) => {
    if (c.clipScore === undefined) return;
    if (c.clipScore >= options.threshold) candidates.push(i);
    if (best < 0 || c.clipScore > captions[best].clipScore!) best = i;
  });
  // 2. Fallbacks: the best-scored caption when none passes, the first caption when nothing is scored.
  if (candidates.length === 0) {
    probs[best >= 0 ? best : 0] = 1;
    return probs;
  }
  // 3. Weights over the candidates.
  const tau = Math.max(options.temperature, MIN_TEMPERATURE);
  const logW = candidates.map((i) => {
    const s = captions[i].clipScore!;
    if (options.mode === 'softmax') return s / tau;
    if (s < 0) {
      throw new Error(`caption choice: caption "${captions[i].key}" has clip score ${s} >= threshold ${options.threshold}, but s^(1/tau) needs scores >= 0 (raise the threshold or use mode softmax)`);
    }
    return Math.log(s) / tau;
  });
  if (logW.every((l) => l === -Infinity)) {
    // Every candidate scored exactly 0: s^(1/tau) is 0 for all of them, so draw uniformly.
    candidates.forEach((i) => (probs[i] = 1 / candidates.length));
    return probs;
  }
  const p = fromLogWeights(logW);
  candidates.forEach((i, j) => (probs[i] = p[j]));
  return probs;
}

/**
 * Draws one caption. Always consumes exactly one uniform from `rng`, also for the deterministic
 * fallbacks, so one image's choice never shifts the draws of the next.
 */
export function chooseCaption(captions: readonly Caption[], options: CaptionChoiceOptions, rng: Rng): CaptionChoice {
  const probs = captionProbabilities(captions, options);
  const u = rng.uniform();
  let index = -1;
  let acc = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    acc += probs[i];
    index = i;
    if (u < acc) break;
  }
  // `index` ends on the last caption with non-zero probability if rounding left acc just below 1.
  const c = captions[index];
  return { index, key: c.key, text: c.text, clipScore: c.clipScore ?? null };
}
