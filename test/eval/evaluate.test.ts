import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { SafetensorsFile } from '../../src/io/safetensors';
import { saveFashionMnistClassifier } from '../../src/io/pretrained/classifier';
import { FashionMnistClassifier, FASHION_MNIST_CLASSES } from '../../src/models/classifier/fashionMnist';
import { FASHION_MNIST_CLASSES as CLASS_PROMPTS } from '../../src/data/fashionMnist';
import { ClassifierExtractor, FeatureExtractor } from '../../src/eval/featureExtractor';
import { EvalEvent, REPORT_JSON, REPORT_MARKDOWN, evaluate, formatReportMarkdown, writeEvalReport } from '../../src/eval/evaluate';
import { classMatcher } from '../../src/eval/classMatch';
import { readFidStats } from '../../src/eval/fid';
import { main } from '../../src/cli/main';
import { parseEvalOptions } from '../../src/cli/commands/eval';
import { CLIPModel } from '../../src/models/clip/modeling';
import { parseCLIPConfig } from '../../src/models/clip/config';
import { writeSafetensors } from '../../src/io/safetensors';
import { loadCLIPModel, loadCLIPTokenizer } from '../../src/io/pretrained/clip';
import { ClipScorer, clipScoreFromCosines } from '../../src/eval/clipScore';
import { ImageDecoder, readImageSet } from '../../src/eval/imageSet';
import { expectNoLeak, useTestBackend } from '../helpers';

const REF = path.resolve(__dirname, '..', '..', 'data', 'fashion-mnist-mini', 'test');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-eval-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A small randomly initialised classifier: the API of the Fashion-MNIST judge, no trained weights. */
function tinyClassifier(seed = 7): FashionMnistClassifier {
  return new FashionMnistClassifier({ channels: [4, 4, 8], hidden_dim: 6 }).initialize(seed);
}

/** Counts extractor calls, to tell a cache hit from a recomputation. */
function counting(inner: FeatureExtractor): FeatureExtractor & { calls: number } {
  const c = {
    calls: 0,
    name: inner.name,
    identity: inner.identity,
    dim: inner.dim,
    classNames: inner.classNames,
    extract(images: Parameters<FeatureExtractor['extract']>[0]) {
      c.calls++;
      return inner.extract(images);
    },
    dispose: () => inner.dispose(),
  };
  return c;
}

/**
 * 24 "generated" images: test-set pictures written as 32x32 RGB PNGs (padded by 2 px, like a 28 -> 32
 * canvas) with sidecars as `sana sample` writes them. One has no sidecar, one a sidecar without a
 * prompt, one a sidecar with an explicit label.
 */
async function writeGenerated(dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const pack = SafetensorsFile.open(path.join(REF, 'images.safetensors'));
  const all = pack.read('images').data as Uint8Array;
  pack.close();
  for (let i = 0; i < 24; i++) {
    const src = i * 21; // 50 images per class in class order: picks several classes
    const label = Math.floor(src / 50);
    const rgb = new Uint8Array(32 * 32 * 3);
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) for (let c = 0; c < 3; c++) rgb[((y + 2) * 32 + x + 2) * 3 + c] = all[src * 784 + y * 28 + x];
    const name = `sample-${String(i).padStart(3, '0')}`;
    await sharp(Buffer.from(rgb), { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path.join(dir, `${name}.png`));
    if (i === 0) continue;
    const sidecar: Record<string, unknown> = i === 1 ? { seed: i } : { prompt: CLASS_PROMPTS[label].prompt, seed: i, steps: 20, guidance_scale: 4.5 };
    if (i === 2) sidecar.label = label;
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(sidecar));
  }
}

/** A transformers-style CLIP folder: tiny random weights, the tiny CLIP-style tokenizer fixture. */
function writeTinyClip(dir: string): void {
  const layers = { hidden_size: 32, intermediate_size: 64, num_attention_heads: 2, num_hidden_layers: 1, hidden_act: 'quick_gelu' };
  const config = {
    model_type: 'clip',
    projection_dim: 16,
    logit_scale_init_value: 2.6592,
    text_config: { ...layers, vocab_size: 420, max_position_embeddings: 77, bos_token_id: 0, eos_token_id: 1, pad_token_id: 1 },
    vision_config: { ...layers, image_size: 64, patch_size: 16, num_channels: 3 },
  };
  const model = new CLIPModel(parseCLIPConfig(config)).initialize(11);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const tensors = new Map([...model.stateDict()].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: t.data }]));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  model.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.resolve(__dirname, '..', 'fixtures', 'clip-tokenizer', f), path.join(dir, f));
}

const gen = path.join(tmp, 'generated');
beforeAll(async () => {
  await useTestBackend();
  await writeGenerated(gen);
}, 30000);

describe('class from prompt', () => {
  const match = classMatcher(FASHION_MNIST_CLASSES);
  test.each([
    ['a photo of a t-shirt', 0],
    ['a photo of a shirt', 6],
    ['a photo of a pair of trousers', 1],
    ['Two ankle boots', 9],
    ['a grayscale product photo of a sneaker on a black background', 7],
    ['a photo of a bag', 8],
    ['a photo of a cat', null],
    ['a coat and a dress', null],
    ['a t-shirt, top view', 0],
  ])('%s -> %s', (prompt, want) => {
    expect(match(prompt)).toBe(want);
  });
});

describe('evaluate (tiny random classifier as feature extractor)', () => {
  const cacheDir = path.join(tmp, 'cache');
  let model: FashionMnistClassifier;
  beforeAll(() => {
    model = tinyClassifier();
  });
  afterAll(() => model.dispose());
  const extractor = () => counting(new ClassifierExtractor(model, FASHION_MNIST_CLASSES, 'tiny-random-7', 'center-crop'));

  test('first run computes features; the second reads both sets from the cache', async () => {
    const events: EvalEvent[] = [];
    const ex1 = extractor();
    const r1 = await evaluate({ images: gen, reference: { kind: 'folder', dir: REF }, extractor: ex1, batchSize: 8, cacheDir, onEvent: (e) => events.push(e) });
    expect(r1.generated).toMatchObject({ images: 24, with_prompts: 22, cached: false });
    expect(r1.reference).toMatchObject({ kind: 'folder', images: 500, cached: false });
    // The reference's labels come from the manifest (meta.label): the judge's own accuracy on them.
    expect(r1.reference!.class_accuracy).toBeGreaterThanOrEqual(0);
    expect(r1.reference!.class_accuracy).toBeLessThanOrEqual(1);
    expect(r1.features).toMatchObject({ extractor: 'fashion-mnist', dim: 6 });
    expect(Number.isFinite(r1.fid)).toBe(true);
    expect(r1.fid!).toBeGreaterThan(0);
    expect(r1.class_accuracy).toMatchObject({ total: 22, unmatched: 2 });
    expect(r1.class_accuracy!.per_class.reduce((a, c) => a + c.total, 0)).toBe(22);
    expect(ex1.calls).toBe(3 + Math.ceil(500 / 8));
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress[progress.length - 1]).toMatchObject({ set: 'reference', done: 500, total: 500 });
    expect(events.filter((e) => e.type === 'cache').map((e) => (e as { hit: boolean }).hit)).toEqual([false, false]);

    const ex2 = extractor();
    const events2: EvalEvent[] = [];
    const r2 = await evaluate({ images: gen, reference: { kind: 'folder', dir: REF }, extractor: ex2, batchSize: 8, cacheDir, onEvent: (e) => events2.push(e) });
    expect(ex2.calls).toBe(0);
    expect(events2.filter((e) => e.type === 'cache').map((e) => (e as { hit: boolean }).hit)).toEqual([true, true]);
    expect(r2.fid).toBe(r1.fid);
    expect(r2.class_accuracy).toEqual(r1.class_accuracy);
    expect(r2.reference!.cached).toBe(true);
  }, 60000);

  test('an edited image invalidates its set in the cache', async () => {
    const copy = path.join(tmp, 'edited');
    fs.cpSync(gen, copy, { recursive: true });
    const ex1 = extractor();
    await evaluate({ images: copy, reference: null, extractor: ex1, cacheDir });
    expect(ex1.calls).toBe(1);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(copy, 'sample-005.png'), later, later);
    const ex2 = extractor();
    const r = await evaluate({ images: copy, reference: null, extractor: ex2, cacheDir });
    expect(ex2.calls).toBe(1);
    expect(r.generated.cached).toBe(false);
  });

  test('a set against itself has FID ~0; saved statistics give the same FID as the folder', async () => {
    const self = await evaluate({ images: gen, reference: { kind: 'folder', dir: gen }, extractor: extractor(), cacheDir: null });
    expect(Math.abs(self.fid!)).toBeLessThan(1e-6);

    const stats = path.join(tmp, 'ref.npz');
    const fromFolder = await evaluate({ images: REF, reference: { kind: 'folder', dir: gen }, extractor: extractor(), cacheDir, saveStats: stats });
    expect(readFidStats(stats).count).toBe(500);
    const fromStats = await evaluate({ images: gen, reference: { kind: 'stats', file: stats }, extractor: extractor(), cacheDir });
    expect(fromStats.fid).toBeCloseTo(fromFolder.fid!, 9);
    expect(fromStats.reference).toMatchObject({ kind: 'stats', images: 500 });
  });

  test('statistics of another feature width are refused with the reason', async () => {
    const other = new FashionMnistClassifier({ channels: [4, 4, 8], hidden_dim: 5 }).initialize(1);
    const stats = path.join(tmp, 'other.npz');
    try {
      await evaluate({ images: gen, reference: null, extractor: new ClassifierExtractor(other, FASHION_MNIST_CLASSES, 'other'), cacheDir: null, saveStats: stats });
    } finally {
      other.dispose();
    }
    await expect(evaluate({ images: gen, reference: { kind: 'stats', file: stats }, extractor: extractor(), cacheDir: null })).rejects.toThrow(
      /other\.npz: reference statistics have 5 features, but the fashion-mnist extractor gives 6/,
    );
  });

  test('the report as JSON and markdown', async () => {
    const r = await evaluate({ images: gen, reference: { kind: 'folder', dir: REF }, extractor: extractor(), cacheDir });
    const out = path.join(tmp, 'report');
    const files = writeEvalReport(r, out);
    const json = JSON.parse(fs.readFileSync(files.json, 'utf8'));
    expect(json.fid).toBe(r.fid);
    expect(json.generated.images).toBe(24);
    expect(json.clip_score).toBeNull();
    const md = fs.readFileSync(path.join(out, REPORT_MARKDOWN), 'utf8');
    expect(md).toBe(formatReportMarkdown(r));
    expect(md).toMatch(/\| FID \(fashion-mnist features, 6-d\) \| \d+\.\d{3} \|/);
    expect(md).toMatch(/\| class accuracy \| \d+\.\d% \(\d+\/22\) \|/);
    expect(md).toMatch(/\| images \| 24 \(22 with prompts\) \|/);
    expect(md).toMatch(/\| class accuracy of the reference images \| \d+\.\d% \|/);
    expect(md).toMatch(/\| Ankle boot \| /);
    expect(fs.existsSync(path.join(out, REPORT_JSON))).toBe(true);
  });

  test('feature extraction leaks no tensor', async () => {
    const ex = extractor();
    const img = { data: new Uint8Array(30 * 30 * 3).fill(100), width: 30, height: 30, channels: 3 };
    await expectNoLeak(() => {
      ex.extract([img, img]);
    });
  });

  test('missing folders and empty sets are clear errors', async () => {
    await expect(evaluate({ images: path.join(tmp, 'nope'), reference: null, extractor: extractor() })).rejects.toThrow(/nope: image folder does not exist/);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    await expect(evaluate({ images: empty, reference: null, extractor: extractor() })).rejects.toThrow(/empty: no images found/);
  });
});

describe('CLIP score of the images with their prompts (tiny random CLIP)', () => {
  const clipDir = path.join(tmp, 'clip');
  beforeAll(() => writeTinyClip(clipDir));

  test('pairs are the images with prompts; the score is the chosen variant of their cosines', async () => {
    const model = loadCLIPModel(clipDir);
    const classifier = tinyClassifier();
    try {
      const scorer = new ClipScorer(model, loadCLIPTokenizer(clipDir));
      const events: EvalEvent[] = [];
      const ex = new ClassifierExtractor(classifier, FASHION_MNIST_CLASSES, 'tiny');
      const r = await evaluate({ images: gen, reference: null, extractor: ex, clip: { scorer, variant: 'sana', model: 'tiny-clip' }, batchSize: 10, cacheDir: null, onEvent: (e) => events.push(e) });
      expect(r.clip).toMatchObject({ model: 'tiny-clip', variant: 'sana', pairs: 22 });
      expect(r.clip!.logit_scale).toBeCloseTo(Math.exp(2.6592), 4);
      expect(events.filter((e) => e.type === 'progress' && e.phase === 'clip').map((e) => (e as { done: number }).done)).toEqual([10, 20, 22]);
      // The same pairs scored in one batch.
      const set = readImageSet(gen);
      const withPrompt = set.images.filter((im) => im.prompt !== null);
      const pairs = scorer.pairs(await new ImageDecoder().decodeAll(withPrompt), withPrompt.map((im) => im.prompt!));
      expect(r.clip_score!).toBeCloseTo(clipScoreFromCosines(pairs.cosines, 'sana', r.clip!.logit_scale), 4);
    } finally {
      model.dispose();
      classifier.dispose();
    }
  }, 60000);
});

describe('sana eval (command line)', () => {
  const classifierDir = path.join(tmp, 'classifier');
  beforeAll(() => {
    const m = tinyClassifier(3);
    saveFashionMnistClassifier(m, classifierDir);
    m.dispose();
  });

  test('options: typed values and errors naming the option', () => {
    const o = parseEvalOptions('imgs', { ref: 'refdir', features: 'fashion-mnist', batchSize: '8', clip: false, cache: false });
    expect(o).toMatchObject({ images: 'imgs', reference: { kind: 'folder', dir: 'refdir' }, features: 'fashion-mnist', batchSize: 8, clip: null, cacheDir: null, out: 'imgs' });
    expect(parseEvalOptions('imgs', { refStats: 's.npz', features: 'fashion-mnist', clip: 'clipdir', cacheDir: 'c' })).toMatchObject({
      reference: { kind: 'stats', file: 's.npz' },
      clip: 'clipdir',
      cacheDir: 'c',
    });
    expect(() => parseEvalOptions('imgs', { ref: 'a', refStats: 'b' })).toThrow(/either --ref .* or --ref-stats/);
    expect(() => parseEvalOptions('imgs', {})).toThrow(/nothing to compare with/);
    const torchHome = process.env.TORCH_HOME;
    process.env.TORCH_HOME = path.join(tmp, 'torch');
    try {
      expect(() => parseEvalOptions('imgs', { ref: 'a' })).toThrow(/Inception features need --inception FILE .*not found in .*torch\/hub\/checkpoints\/pt_inception-2015-12-05-6726825d\.pth/);
      const weights = path.join(tmp, 'torch', 'hub', 'checkpoints', 'pt_inception-2015-12-05-6726825d.pth');
      fs.mkdirSync(path.dirname(weights), { recursive: true });
      fs.writeFileSync(weights, '');
      expect(parseEvalOptions('imgs', { ref: 'a' }).inception).toBe(weights);
    } finally {
      if (torchHome === undefined) delete process.env.TORCH_HOME;
      else process.env.TORCH_HOME = torchHome;
    }
    expect(() => parseEvalOptions('imgs', { ref: 'a', features: 'fashion-mnist', batchSize: '0' })).toThrow(/--batch-size must be a positive integer, got "0"/);
    expect(() => parseEvalOptions('imgs', { ref: 'a', features: 'vgg' })).toThrow(/--features must be one of inception, fashion-mnist, got "vgg"/);
  });

  test('end to end: report files, then the second run uses the cache', async () => {
    const out = path.join(tmp, 'cli-out');
    const cache = path.join(tmp, 'cli-cache');
    const argv = ['eval', gen, '--ref', REF, '--features', 'fashion-mnist', '--classifier', classifierDir, '--fit', 'center-crop', '--no-clip', '--batch-size', '16', '--out', out, '--cache-dir', cache];
    const logs: string[] = [];
    const spy = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void logs.push(a.join(' ')));
    try {
      expect(await main(argv)).toBe(0);
      const first = JSON.parse(fs.readFileSync(path.join(out, REPORT_JSON), 'utf8'));
      expect(first.generated.images).toBe(24);
      expect(logs.join('\n')).toMatch(/reference features  500\/500/);
      logs.length = 0;
      expect(await main(argv)).toBe(0);
      const second = JSON.parse(fs.readFileSync(path.join(out, REPORT_JSON), 'utf8'));
      expect(second.fid).toBe(first.fid);
      expect(logs.join('\n')).toMatch(/reference: feature statistics from the cache/);
      expect(logs.join('\n')).not.toMatch(/features {2}\d+\/\d+/);
    } finally {
      spy.mockRestore();
    }
  }, 60000);

  test('with --clip: the CLIP score is in the report', async () => {
    const clipDir = path.join(tmp, 'clip-cli');
    writeTinyClip(clipDir);
    const out = path.join(tmp, 'cli-clip');
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      const argv = ['eval', gen, '--ref', REF, '--features', 'fashion-mnist', '--classifier', classifierDir, '--clip', clipDir, '--clip-variant', 'clamped_pairs', '--out', out, '--no-cache'];
      expect(await main(argv)).toBe(0);
    } finally {
      log.mockRestore();
    }
    const report = JSON.parse(fs.readFileSync(path.join(out, REPORT_JSON), 'utf8'));
    expect(report.clip).toMatchObject({ variant: 'clamped_pairs', pairs: 22, model: clipDir });
    expect(report.clip_score).toBeGreaterThanOrEqual(0);
    expect(report.settings.cache_dir).toBeNull();
  }, 60000);

  test('a missing classifier folder is named', async () => {
    const errors: string[] = [];
    const spy = jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void errors.push(a.join(' ')));
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(await main(['eval', gen, '--ref', REF, '--features', 'fashion-mnist', '--classifier', path.join(tmp, 'absent')])).toBe(1);
      expect(errors.join('\n')).toMatch(/absent\/config\.json: not found/);
    } finally {
      spy.mockRestore();
      log.mockRestore();
    }
  });
});
