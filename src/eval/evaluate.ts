/**
 * Evaluation of a folder of generated images: FID against a reference set (a folder, a dataset, or
 * pytorch-fid `.npz` statistics), CLIP score of the images with their prompts, and, with a classifier
 * as feature extractor, the class accuracy of the samples. The result is a report (JSON + markdown).
 *
 * What is computed mirrors the standard tools: pytorch-fid's `calculate_fid_given_paths` (features in
 * batches, float64 statistics, Fréchet distance; see fid.ts) and torchmetrics' CLIP score (clipScore.ts).
 * Feature statistics are cached per (extractor, file list with sizes and mtimes), see statsCache.ts.
 * Progress is reported as typed events; nothing here prints.
 */
import * as path from 'path';
import { writeFileAtomic } from '../io/atomic';
import { FeatureStats, FrechetResult, featureStatistics, frechetDistance, readFidStats, writeFidStats } from './fid';
import { FeatureExtractor } from './featureExtractor';
import { ClipScoreVariant, ClipScorer, clipScoreFromCosines } from './clipScore';
import { EvalImage, ImageDecoder, ImageSet, readImageSet } from './imageSet';
import { StatsCache, statsCacheKey } from './statsCache';
import { classMatcher } from './classMatch';

export type EvalSetName = 'generated' | 'reference';

export type EvalEvent =
  | { type: 'set'; set: EvalSetName; root: string; images: number; layout: ImageSet['layout'] }
  | { type: 'cache'; set: EvalSetName; hit: boolean; file: string }
  | { type: 'progress'; set: EvalSetName; phase: 'features' | 'clip'; done: number; total: number; imagesPerSec: number }
  | { type: 'message'; level: 'info' | 'warn'; text: string };

export type ReferenceSpec = { kind: 'folder'; dir: string } | { kind: 'stats'; file: string };

export interface ClipOptions {
  scorer: ClipScorer;
  variant: ClipScoreVariant;
  /** Names the model in the report (e.g. its folder). */
  model: string;
}

export interface EvaluateOptions {
  /** Folder of generated images (sidecars `name.json` with `prompt`, optionally `label`). */
  images: string;
  /** What FID compares against; null skips FID. */
  reference: ReferenceSpec | null;
  extractor: FeatureExtractor;
  /** CLIP scoring; null skips it. */
  clip?: ClipOptions | null;
  /** Images per network call (default 32). */
  batchSize?: number;
  /** Statistics cache folder; null disables caching. */
  cacheDir?: string | null;
  /** Also write the generated set's statistics here, in pytorch-fid's `.npz` format. */
  saveStats?: string | null;
  onEvent?: (e: EvalEvent) => void;
}

export interface ClassAccuracy {
  accuracy: number;
  correct: number;
  /** Images whose class was known (from a sidecar label or the prompt). */
  total: number;
  /** Images with no recognisable class (not counted in `total`). */
  unmatched: number;
  /** Per class, in label order. */
  per_class: Array<{ name: string; correct: number; total: number; accuracy: number | null }>;
}

/** The report, also written as JSON (field names are the JSON's). */
export interface EvalReport {
  generated: { dir: string; images: number; with_prompts: number; cached: boolean };
  /** `class_accuracy`: the classifier on the reference images (how far the judge itself can be trusted). */
  reference: { kind: ReferenceSpec['kind']; path: string; images: number | null; cached: boolean; class_accuracy: number | null } | null;
  features: { extractor: string; identity: string; dim: number };
  fid: number | null;
  fid_terms: Omit<FrechetResult, 'fid'> | null;
  clip_score: number | null;
  clip: { model: string; variant: ClipScoreVariant; pairs: number; logit_scale: number } | null;
  class_accuracy: ClassAccuracy | null;
  settings: { batch_size: number; cache_dir: string | null; save_stats: string | null };
  seconds: number;
  created_at: string;
}

interface SetFeatures {
  stats: FeatureStats;
  predictions: Int32Array | null;
  cached: boolean;
}

function argmaxRows(logits: Float32Array, rows: number, cols: number, out: Int32Array, offset: number): void {
  for (let i = 0; i < rows; i++) {
    let best = 0;
    for (let j = 1; j < cols; j++) if (logits[i * cols + j] > logits[i * cols + best]) best = j;
    out[offset + i] = best;
  }
}

/** Feature statistics (and predictions) of a set, from the cache or the network. */
async function setFeatures(set: ImageSet, name: EvalSetName, opts: EvaluateOptions, batchSize: number): Promise<SetFeatures> {
  const { extractor, onEvent } = opts;
  const cache = opts.cacheDir ? new StatsCache(opts.cacheDir) : null;
  const key = statsCacheKey(extractor.identity, set.fingerprint, { layout: set.layout });
  if (cache) {
    const hit = cache.get(key);
    if (hit && hit.stats.dim === extractor.dim && hit.stats.count === set.images.length) {
      onEvent?.({ type: 'cache', set: name, hit: true, file: cache.file(key) });
      return { ...hit, cached: true };
    }
  }
  const n = set.images.length;
  if (n < 2) throw new Error(`${set.root}: FID needs at least 2 images, found ${n}`);
  const d = extractor.dim;
  const features = new Float32Array(n * d);
  const classes = extractor.classNames?.length ?? 0;
  const predictions = classes ? new Int32Array(n) : null;
  const decoder = new ImageDecoder();
  const start = Date.now();
  for (let b = 0; b < n; b += batchSize) {
    const batch = set.images.slice(b, b + batchSize);
    const out = extractor.extract(await decoder.decodeAll(batch));
    if (out.features.length !== batch.length * d) {
      throw new Error(`feature extractor ${extractor.name} returned ${out.features.length} values for ${batch.length} images of ${d} features`);
    }
    features.set(out.features, b * d);
    if (predictions) {
      if (!out.logits) throw new Error(`feature extractor ${extractor.name} has class names but returned no logits`);
      argmaxRows(out.logits, batch.length, classes, predictions, b);
    }
    const done = b + batch.length;
    onEvent?.({ type: 'progress', set: name, phase: 'features', done, total: n, imagesPerSec: done / Math.max((Date.now() - start) / 1000, 1e-3) });
  }
  const stats = featureStatistics(features, n, d);
  if (cache) onEvent?.({ type: 'cache', set: name, hit: false, file: cache.set(key, { stats, predictions }) });
  return { stats, predictions, cached: false };
}

/** Class accuracy of predictions against each image's label, or the class its prompt names. */
export function classAccuracy(images: EvalImage[], predictions: Int32Array, classNames: readonly string[]): ClassAccuracy {
  const match = classMatcher(classNames);
  const perClass = classNames.map((name) => ({ name, correct: 0, total: 0, accuracy: null as number | null }));
  let correct = 0;
  let total = 0;
  let unmatched = 0;
  images.forEach((im, i) => {
    const want = im.label ?? (im.prompt !== null ? match(im.prompt) : null);
    if (want === null || want >= classNames.length) {
      unmatched++;
      return;
    }
    total++;
    perClass[want].total++;
    if (predictions[i] === want) {
      correct++;
      perClass[want].correct++;
    }
  });
  for (const c of perClass) c.accuracy = c.total ? c.correct / c.total : null;
  return { accuracy: total ? correct / total : NaN, correct, total, unmatched, per_class: perClass };
}

/** CLIP score of the images that have prompts. */
async function clipPass(set: ImageSet, clip: ClipOptions, batchSize: number, onEvent?: (e: EvalEvent) => void): Promise<EvalReport['clip'] & { score: number }> {
  const withPrompt = set.images.filter((im) => im.prompt !== null);
  const cosines: number[] = [];
  const decoder = new ImageDecoder();
  const start = Date.now();
  for (let b = 0; b < withPrompt.length; b += batchSize) {
    const batch = withPrompt.slice(b, b + batchSize);
    const pairs = clip.scorer.pairs(await decoder.decodeAll(batch), batch.map((im) => im.prompt as string));
    cosines.push(...pairs.cosines);
    const done = b + batch.length;
    onEvent?.({ type: 'progress', set: 'generated', phase: 'clip', done, total: withPrompt.length, imagesPerSec: done / Math.max((Date.now() - start) / 1000, 1e-3) });
  }
  const logitScale = clip.scorer.logitScale();
  return { model: clip.model, variant: clip.variant, pairs: cosines.length, logit_scale: logitScale, score: clipScoreFromCosines(cosines, clip.variant, logitScale) };
}

/** Runs the evaluation; see the file header. */
export async function evaluate(opts: EvaluateOptions): Promise<EvalReport> {
  const t0 = Date.now();
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const { extractor, onEvent } = opts;

  // 1. The generated set and its features.
  const gen = readImageSet(opts.images);
  onEvent?.({ type: 'set', set: 'generated', root: gen.root, images: gen.images.length, layout: gen.layout });
  const genFeatures = await setFeatures(gen, 'generated', opts, batchSize);

  // 2. The reference statistics.
  let refStats: FeatureStats | null = null;
  let reference: EvalReport['reference'] = null;
  if (opts.reference?.kind === 'stats') {
    refStats = readFidStats(opts.reference.file);
    reference = { kind: 'stats', path: opts.reference.file, images: refStats.count || null, cached: false, class_accuracy: null };
  } else if (opts.reference?.kind === 'folder') {
    const ref = readImageSet(opts.reference.dir);
    onEvent?.({ type: 'set', set: 'reference', root: ref.root, images: ref.images.length, layout: ref.layout });
    const refFeatures = await setFeatures(ref, 'reference', opts, batchSize);
    refStats = refFeatures.stats;
    const refAccuracy = extractor.classNames && refFeatures.predictions ? classAccuracy(ref.images, refFeatures.predictions, extractor.classNames) : null;
    reference = {
      kind: 'folder',
      path: opts.reference.dir,
      images: ref.images.length,
      cached: refFeatures.cached,
      class_accuracy: refAccuracy && refAccuracy.total > 0 ? refAccuracy.accuracy : null,
    };
  }
  if (refStats && refStats.dim !== extractor.dim) {
    throw new Error(`${reference!.path}: reference statistics have ${refStats.dim} features, but the ${extractor.name} extractor gives ${extractor.dim} (use statistics computed with the same extractor)`);
  }

  // 3. FID.
  let fid: number | null = null;
  let fidTerms: EvalReport['fid_terms'] = null;
  if (refStats) {
    const { fid: value, ...terms } = frechetDistance(genFeatures.stats, refStats);
    fid = value;
    fidTerms = terms;
  }

  // 4. Class accuracy (classifier extractors).
  let accuracy: ClassAccuracy | null = null;
  if (extractor.classNames && genFeatures.predictions) {
    accuracy = classAccuracy(gen.images, genFeatures.predictions, extractor.classNames);
    if (accuracy.unmatched) {
      onEvent?.({ type: 'message', level: 'warn', text: `${accuracy.unmatched} of ${gen.images.length} images have no label and no class name in their prompt; left out of the class accuracy` });
    }
  }

  // 5. CLIP score.
  const withPrompts = gen.images.filter((im) => im.prompt !== null).length;
  let clip: EvalReport['clip'] = null;
  let clipScore: number | null = null;
  if (opts.clip) {
    if (withPrompts === 0) {
      onEvent?.({ type: 'message', level: 'warn', text: `${gen.root}: no image has a prompt (sidecar "prompt" field or .txt caption); CLIP score skipped` });
    } else {
      const { score, ...info } = await clipPass(gen, opts.clip, batchSize, onEvent);
      clip = info;
      clipScore = score;
    }
  }

  // 6. The generated set's statistics, for reuse as a reference.
  if (opts.saveStats) writeFidStats(opts.saveStats, genFeatures.stats);

  return {
    generated: { dir: gen.root, images: gen.images.length, with_prompts: withPrompts, cached: genFeatures.cached },
    reference,
    features: { extractor: extractor.name, identity: extractor.identity, dim: extractor.dim },
    fid,
    fid_terms: fidTerms,
    clip_score: clipScore,
    clip,
    class_accuracy: accuracy,
    settings: { batch_size: batchSize, cache_dir: opts.cacheDir ?? null, save_stats: opts.saveStats ?? null },
    seconds: (Date.now() - t0) / 1000,
    created_at: new Date().toISOString(),
  };
}

function fmt(v: number | null, digits: number): string {
  return v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits);
}

function percent(v: number | null): string {
  return v === null || !Number.isFinite(v) ? 'n/a' : `${(100 * v).toFixed(1)}%`;
}

/** The report as a markdown table (plus a per-class table when there is a class accuracy). */
export function formatReportMarkdown(r: EvalReport): string {
  const ref = r.reference ? `${r.reference.kind === 'stats' ? 'statistics' : 'images'} \`${r.reference.path}\`${r.reference.images ? ` (${r.reference.images} images)` : ''}` : 'none';
  const rows: Array<[string, string]> = [
    [`FID (${r.features.extractor} features, ${r.features.dim}-d)`, fmt(r.fid, 3)],
    [r.clip ? `CLIP score (${r.clip.variant}, ${r.clip.model})` : 'CLIP score', r.clip ? fmt(r.clip_score, 3) : 'not computed'],
  ];
  if (r.class_accuracy) rows.push(['class accuracy', `${percent(r.class_accuracy.accuracy)} (${r.class_accuracy.correct}/${r.class_accuracy.total})`]);
  if (r.reference?.class_accuracy != null) rows.push(['class accuracy of the reference images', percent(r.reference.class_accuracy)]);
  rows.push(
    ['images', `${r.generated.images} (${r.generated.with_prompts} with prompts)`],
    ['generated', `\`${r.generated.dir}\``],
    ['reference', ref],
    ['batch size', String(r.settings.batch_size)],
    ['feature extractor', `\`${r.features.identity}\``],
  );
  const lines = ['| metric | value |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)];
  if (r.class_accuracy) {
    lines.push('', '| class | accuracy | correct / total |', '| --- | --- | --- |');
    for (const c of r.class_accuracy.per_class) lines.push(`| ${c.name} | ${percent(c.accuracy)} | ${c.correct}/${c.total} |`);
  }
  return `${lines.join('\n')}\n`;
}

export const REPORT_JSON = 'evaluation.json';
export const REPORT_MARKDOWN = 'evaluation.md';

/** Writes `evaluation.json` and `evaluation.md` into `dir` (atomically); returns their paths. */
export function writeEvalReport(report: EvalReport, dir: string): { json: string; markdown: string } {
  const json = path.join(dir, REPORT_JSON);
  const markdown = path.join(dir, REPORT_MARKDOWN);
  // NaN (an accuracy over zero images) is not JSON: write null instead.
  writeFileAtomic(json, `${JSON.stringify(report, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  writeFileAtomic(markdown, formatReportMarkdown(report));
  return { json, markdown };
}
