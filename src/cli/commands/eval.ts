/**
 * `sana eval IMAGES [--ref DIR | --ref-stats FILE.npz] [--features inception|fashion-mnist] ...`:
 * argv -> typed options -> one call to `evaluate`, with a console progress line; writes
 * `evaluation.json` and `evaluation.md` (FID, CLIP score, class accuracy, image count, settings).
 */
import { Command, Option } from 'commander';
import { startBackend, withBackendOption } from '../common';
import { consoleLines, crossesTenth } from '../console';
import { EvalEvent, EvalReport, ReferenceSpec, evaluate, formatReportMarkdown, writeEvalReport } from '../../eval/evaluate';
import { ClassifierFit, FEATURE_KINDS, FeatureKind, createFeatureExtractor } from '../../eval/featureExtractor';
import { CLIP_SCORE_VARIANTS, ClipScoreVariant, ClipScorer } from '../../eval/clipScore';
import { defaultCacheDir } from '../../eval/statsCache';
import { loadCLIPModel, loadCLIPTokenizer } from '../../io/pretrained/clip';
import { FID_INCEPTION_WEIGHTS, findInceptionWeights, inceptionWeightCandidates } from '../../io/pretrained/inception';

export interface EvalCommandOptions {
  images: string;
  reference: ReferenceSpec | null;
  features: FeatureKind;
  inception: string | null;
  classifier: string | null;
  fit: ClassifierFit;
  /** CLIP model folder, or null for no CLIP score. */
  clip: string | null;
  clipVariant: ClipScoreVariant;
  batchSize: number;
  saveStats: string | null;
  /** Report folder (default: the images folder). */
  out: string;
  /** Statistics cache folder, or null for no cache. */
  cacheDir: string | null;
  backend: string | null;
}

/** What commander hands over (`clip` is false with --no-clip, `cache` false with --no-cache). */
export interface EvalRawOptions {
  ref?: string;
  refStats?: string;
  features?: string;
  inception?: string;
  classifier?: string;
  fit?: string;
  clip?: string | false;
  clipVariant?: string;
  batchSize?: string | number;
  saveStats?: string;
  out?: string;
  cacheDir?: string;
  cache?: boolean;
  backend?: string;
}

function oneOf<T extends string>(what: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw new Error(`sana eval: ${what} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T;
}

/** Validates commander's raw options into the typed form; errors name the option. */
export function parseEvalOptions(images: string, raw: EvalRawOptions): EvalCommandOptions {
  if (raw.ref && raw.refStats) throw new Error('sana eval: give either --ref (an image folder) or --ref-stats (an .npz), not both');
  const reference: ReferenceSpec | null = raw.ref ? { kind: 'folder', dir: raw.ref } : raw.refStats ? { kind: 'stats', file: raw.refStats } : null;
  const features = oneOf('--features', raw.features ?? 'inception', FEATURE_KINDS);
  if (!reference && !raw.saveStats) {
    throw new Error('sana eval: nothing to compare with: give --ref DIR or --ref-stats FILE.npz (or --save-stats FILE.npz to only compute statistics)');
  }
  const batchSize = Number(raw.batchSize ?? 32);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`sana eval: --batch-size must be a positive integer, got "${raw.batchSize}"`);
  const inception = raw.inception ?? (features === 'inception' ? findInceptionWeights() : null);
  if (features === 'inception' && !inception) {
    throw new Error(
      `sana eval: Inception features need --inception FILE (pytorch-fid's ${FID_INCEPTION_WEIGHTS}; not found in ${inceptionWeightCandidates().join(' or ')}), or choose --features fashion-mnist`,
    );
  }
  return {
    images,
    reference,
    features,
    inception,
    classifier: raw.classifier ?? null,
    fit: oneOf('--fit', raw.fit ?? 'resize', ['resize', 'center-crop'] as const),
    clip: typeof raw.clip === 'string' ? raw.clip : null,
    clipVariant: oneOf('--clip-variant', raw.clipVariant ?? 'torchmetrics', CLIP_SCORE_VARIANTS),
    batchSize,
    saveStats: raw.saveStats ?? null,
    out: raw.out ?? images,
    cacheDir: raw.cache === false ? null : (raw.cacheDir ?? defaultCacheDir()),
    backend: raw.backend ?? null,
  };
}

/** The progress line: `generated features  96/500  41.2 img/s`. */
export function formatEvalProgress(e: Extract<EvalEvent, { type: 'progress' }>): string {
  const width = String(e.total).length;
  return `${e.set} ${e.phase}  ${String(e.done).padStart(width)}/${e.total}  ${e.imagesPerSec.toFixed(1)} img/s`;
}

function consolePrinter(): (e: EvalEvent) => void {
  const out = consoleLines();
  return (e) => {
    switch (e.type) {
      case 'set':
        out.line(`${e.set}: ${e.images} images in ${e.root}${e.layout === 'manifest' ? ' (manifest)' : ''}`);
        break;
      case 'cache':
        out.line(e.hit ? `${e.set}: feature statistics from the cache (${e.file})` : `${e.set}: feature statistics cached in ${e.file}`);
        break;
      case 'progress':
        // On a terminal the line is rewritten and kept when done; in a log, one line per tenth.
        if (out.tty) {
          if (e.done < e.total) out.progress(formatEvalProgress(e));
          else out.line(formatEvalProgress(e));
        } else if (crossesTenth(e.done, e.total)) {
          out.line(formatEvalProgress(e));
        }
        break;
      case 'message':
        out.line(`${e.level === 'warn' ? 'warning: ' : ''}${e.text}`);
        break;
    }
  };
}

/** Loads the networks, runs the evaluation, writes and prints the report. */
export async function evalCommand(opts: EvalCommandOptions): Promise<EvalReport> {
  await startBackend(opts.backend ?? undefined);
  const extractor = createFeatureExtractor(opts.features, { inception: opts.inception, classifier: opts.classifier, fit: opts.fit });
  let clipModel: ReturnType<typeof loadCLIPModel> | null = null;
  try {
    let clip = null;
    if (opts.clip) {
      clipModel = loadCLIPModel(opts.clip);
      clip = { scorer: new ClipScorer(clipModel, loadCLIPTokenizer(opts.clip)), variant: opts.clipVariant, model: opts.clip };
    }
    const report = await evaluate({
      images: opts.images,
      reference: opts.reference,
      extractor,
      clip,
      batchSize: opts.batchSize,
      cacheDir: opts.cacheDir,
      saveStats: opts.saveStats,
      onEvent: consolePrinter(),
    });
    const files = writeEvalReport(report, opts.out);
    console.log(`\n${formatReportMarkdown(report).trimEnd()}`);
    console.log(`\nreport: ${files.json}, ${files.markdown}${opts.saveStats ? `\nstatistics: ${opts.saveStats}` : ''}`);
    return report;
  } finally {
    extractor.dispose();
    clipModel?.dispose();
  }
}

/** Registers `sana eval`; `action` is replaceable so tests can check the parsed options. */
export function registerEval(program: Command, action: (opts: EvalCommandOptions) => Promise<unknown> = evalCommand): void {
  const cmd = program
    .command('eval')
    .description('FID (and class accuracy) against a reference set, and CLIP score, of a folder of generated images')
    .argument('<images>', 'folder of generated images (prompts from the JSON sidecars `sana sample` writes)')
    .option('--ref <dir>', 'reference images: a folder, or a dataset folder with manifest.jsonl')
    .option('--ref-stats <file>', "reference statistics in pytorch-fid's .npz format (mu, sigma)")
    .addOption(new Option('--features <kind>', 'feature extractor').choices([...FEATURE_KINDS]).default('inception'))
    .option('--inception <file>', `FID Inception weights (default: ${FID_INCEPTION_WEIGHTS} in torch hub's cache or checkpoints/)`)
    .option('--classifier <dir>', 'classifier folder for --features fashion-mnist (default data/fashion-mnist-classifier)')
    .addOption(new Option('--fit <mode>', 'how images of another size become the classifier input').choices(['resize', 'center-crop']).default('resize'))
    .option('--clip <dir>', 'CLIP model folder (transformers layout, e.g. openai/clip-vit-large-patch14) for the CLIP score')
    .option('--no-clip', 'no CLIP score')
    .addOption(new Option('--clip-variant <name>', 'CLIP score definition').choices([...CLIP_SCORE_VARIANTS]).default('torchmetrics'))
    .option('--batch-size <n>', 'images per network call', '32')
    .option('--save-stats <file>', "write the generated set's feature statistics (pytorch-fid .npz)")
    .option('--out <dir>', 'folder for evaluation.json and evaluation.md (default: the images folder)')
    .option('--cache-dir <dir>', 'feature statistics cache (default ~/.cache/sana-tfjs/eval)')
    .option('--no-cache', 'do not read or write the statistics cache');
  withBackendOption(cmd).action(async (images: string, raw: EvalRawOptions) => {
    await action(parseEvalOptions(images, raw));
  });
}
