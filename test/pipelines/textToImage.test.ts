/**
 * `generateImages` on a tiny random pipeline: memory across the whole sampling loop (guidance, sampler,
 * decode), given latents versus seeded noise, guidance switched off at scale <= 1, and bad options.
 * Parity with the reference pipeline is the golden case `sana_pipeline_tiny` (src/golden/runners/pipeline.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf, Tensor4D } from '../../src/backend';
import { expectNoLeak, useTestBackend } from '../helpers';
import { makeTinyPipeline } from '../../scripts/make-tiny-pipeline';
import { LoadedSanaPipeline, loadSanaPipeline } from '../../src/io/pretrained/pipeline';
import { Gemma2Model } from '../../src/models/text';
import { SanaPromptEncoder } from '../../src/pipelines/promptEncoding';
import { SanaPipelineComponents, TextToImageOptions, generateImages, initialNoise, resolveImageSize } from '../../src/pipelines/textToImage';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-t2i-'));
let pipe: LoadedSanaPipeline;
let textEncoder: Gemma2Model;
let components: SanaPipelineComponents;

beforeAll(async () => {
  await useTestBackend();
  pipe = loadSanaPipeline(makeTinyPipeline(path.join(root, 'pipe'), { seed: 11 }));
  textEncoder = pipe.loadTextEncoder();
  // Without the instruction the text is 16 tokens: fast, and the pipeline path is the same.
  const promptEncoder = new SanaPromptEncoder({ tokenizer: pipe.tokenizer, textEncoder, complexHumanInstruction: null, maxSequenceLength: 16 });
  components = { transformer: pipe.transformer, vae: pipe.vae, promptEncoder, scheduler: pipe.scheduler };
});

afterAll(() => {
  textEncoder?.dispose();
  pipe?.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

const base: TextToImageOptions = { prompts: ['a red fox'], steps: 3, height: 64, width: 96, resolutionBinning: false };

test('no tensor leaks across encoding, the guided sampling loop and decoding', async () => {
  for (const sampler of ['dpm', 'euler'] as const) {
    await expectNoLeak(async () => {
      const out = await generateImages(components, { ...base, sampler, numImagesPerPrompt: 2, batchSize: 2, inspect: { step: (e) => void e.x.shape } });
      expect(out.images).toHaveLength(2);
    }, 1);
  }
});

test('given latents replace the seeded noise; the hooks see every step', async () => {
  const [h, w, c] = [2, 3, 8];
  const latents = tf.tensor4d(initialNoise(9, h, w, c), [1, h, w, c]) as Tensor4D;
  let steps = 0;
  let evaluations = 0;
  const fromLatents = await generateImages(components, { ...base, latents, inspect: { step: () => steps++, guidance: (g) => (evaluations++, expect(g.uncond).not.toBeNull()) } });
  expect([steps, evaluations]).toEqual([3, 3]);
  expect(fromLatents.settings.seed).toBeNull();
  expect(fromLatents.images[0].seed).toBeNull();
  // The same noise drawn from seed 9 gives the same pixels.
  const fromSeed = await generateImages(components, { ...base, seed: 9 });
  expect(Buffer.from(fromSeed.images[0].pixels).equals(Buffer.from(fromLatents.images[0].pixels))).toBe(true);
  expect(latents.isDisposed).toBe(false);
  latents.dispose();
});

test('a guidance scale <= 1 evaluates the conditional branch only and encodes no negative prompt', async () => {
  let uncondSeen = 0;
  const out = await generateImages(components, { ...base, guidanceScale: 1, inspect: { guidance: (g) => (uncondSeen += g.uncond ? 1 : 0) } });
  expect(uncondSeen).toBe(0);
  expect(out.settings.negative_prompts).toBeNull();
  expect(out.settings.guidance_scale).toBe(1);
});

test('bad options fail before any work, naming the option', async () => {
  await expect(generateImages(components, { ...base, prompts: [] })).rejects.toThrow(/at least one prompt/);
  await expect(generateImages(components, { ...base, steps: 0 })).rejects.toThrow(/steps must be an integer >= 1/);
  await expect(generateImages(components, { ...base, negativePrompt: ['a', 'b'] })).rejects.toThrow(/2 negative prompts for 1 prompts/);
  await expect(generateImages(components, { ...base, height: 50 })).rejects.toThrow(/multiple of 32/);
  const wrong = tf.zeros([1, 4, 4, 8]) as Tensor4D;
  await expect(generateImages(components, { ...base, latents: wrong })).rejects.toThrow(/latents must be NHWC \[1,2,3,8\]/);
  wrong.dispose();
});

describe('resolution binning', () => {
  const model = (sampleSize: number, ratio: number | null) =>
    ({
      transformer: { config: { sample_size: sampleSize, patch_size: 1 } },
      vae: ratio === null ? null : { spatialCompressionRatio: ratio },
    }) as unknown as Pick<SanaPipelineComponents, 'transformer' | 'vae'>;

  test('on by default where the model has SANA bins: the nearest bin is sampled', () => {
    const s = resolveImageSize(model(32, 32), { height: 1000, width: 1500 });
    expect(s.binning).toBe(true);
    expect([s.height, s.width]).toEqual([1000, 1500]);
    expect(s.sampleHeight % 32).toBe(0);
    expect(Math.abs(s.sampleHeight / s.sampleWidth - 1000 / 1500)).toBeLessThan(0.05);
  });

  test('off by default for other compressions, sample sizes and pixel space', () => {
    expect(resolveImageSize(model(7, 4), {}).binning).toBe(false);
    expect(resolveImageSize(model(7, 4), {}).sampleHeight).toBe(28);
    expect(resolveImageSize(model(32, 8), {}).binning).toBe(false);
    expect(resolveImageSize(model(16, null), {}).binning).toBe(false);
  });

  test('asked for explicitly on a model without bins: a clear error', () => {
    expect(() => resolveImageSize(model(7, 4), { resolutionBinning: true })).toThrow(/no aspect-ratio bins.*disable resolution binning/);
  });
});
