/**
 * `sana sample` on a tiny random pipeline folder (made by scripts/make-tiny-pipeline.ts): argv parsing,
 * PNG size and sidecar, byte-identical results for the same seed, resolution binning with the image
 * resized back, sampling from a training checkpoint, and the errors for bad input.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as YAML from 'yaml';
import { Command } from 'commander';
import { useTestBackend } from '../helpers';
import { makeTinyPipeline } from '../../scripts/make-tiny-pipeline';
import { SampleCommandOptions, registerSample, sampleCommand, readPrompts } from '../../src/cli/commands/sample';
import { readJsonFile } from '../../src/io/json';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-sample-'));
const pipe = path.join(root, 'pipe');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  await useTestBackend();
  makeTinyPipeline(pipe, { seed: 5 });
});

/** Options as the command line would produce them, small enough for a test. */
function options(over: Partial<SampleCommandOptions>): SampleCommandOptions {
  return {
    pipeline: pipe,
    checkpoint: null,
    prompts: ['a red fox in the snow'],
    promptsFile: null,
    negativePrompt: '',
    steps: 2,
    cfg: 4.5,
    sampler: null,
    seed: 0,
    width: 96,
    height: 64,
    numImages: 1,
    batchSize: 1,
    binning: false,
    out: path.join(root, 'out'),
    loras: [],
    backend: null,
    ...over,
  };
}

const quiet = () => {};

/** The first image of the first sampling test (the reference for the checkpoint test). */
let baselinePng: string | null = null;

function parse(argv: string[]): SampleCommandOptions {
  let got: SampleCommandOptions | null = null;
  const program = new Command().exitOverride();
  registerSample(program, async (o) => {
    got = o;
  });
  program.parse(['sample', ...argv], { from: 'user' });
  return got!;
}

describe('argv', () => {
  test('parses into typed options with the defaults', () => {
    const o = parse(['--pipeline', 'p', '--prompt', 'a', '--prompt', 'b', '--lora', 'x.safetensors:0.5', '--lora', 'y.safetensors', '--steps', '8', '--sampler', 'euler', '--seed', '7', '--width', '640', '-n', '2', '--no-binning']);
    expect(o).toEqual({
      pipeline: 'p',
      checkpoint: null,
      prompts: ['a', 'b'],
      promptsFile: null,
      negativePrompt: '',
      steps: 8,
      cfg: 4.5,
      sampler: 'euler',
      seed: 7,
      width: 640,
      height: null,
      numImages: 2,
      batchSize: 1,
      binning: false,
      ema: true,
      out: 'samples',
      loras: [{ path: 'x.safetensors', scale: 0.5 }, { path: 'y.safetensors', scale: 1 }],
      backend: null,
    });
  });

  test('bad numbers and sampler names are rejected', () => {
    expect(() => parse(['--steps', '0'])).toThrow(/positive integer/);
    expect(() => parse(['--seed', '-1'])).toThrow(/integer >= 0/);
    expect(() => parse(['--cfg', 'abc'])).toThrow(/number >= 0/);
    expect(() => parse(['--sampler', 'ddim'])).toThrow(/dpm, euler/);
  });
});

describe('sampling from a pipeline folder', () => {
  test('writes a PNG of the requested size and a sidecar with every setting; same seed, same bytes', async () => {
    const lines: string[] = [];
    const [first] = await sampleCommand(options({ negativePrompt: 'blurry', out: path.join(root, 'a') }), (l) => lines.push(l));
    baselinePng = first.png;
    const meta = await sharp(first.png).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([96, 64, 3]);
    const side = readJsonFile(first.sidecar);
    expect(side).toMatchObject({
      prompt: 'a red fox in the snow',
      negative_prompt: 'blurry',
      seed: 0,
      steps: 2,
      guidance_scale: 4.5,
      sampler: 'dpm',
      width: 96,
      height: 64,
      resolution_binning: false,
      source: { kind: 'pipeline', path: path.resolve(pipe) },
      loras: [],
      max_sequence_length: 300,
    });
    expect(side.timesteps).toHaveLength(2);
    expect(side.command).toContain("--prompt 'a red fox in the snow'");
    expect(lines.some((l) => /^image 1\/1 +step 2\/2 +[\d.]+ it\/s$/.test(l))).toBe(true);

    const [again] = await sampleCommand(options({ negativePrompt: 'blurry', out: path.join(root, 'b') }), quiet);
    expect(fs.readFileSync(again.png).equals(fs.readFileSync(first.png))).toBe(true);
    const [other] = await sampleCommand(options({ negativePrompt: 'blurry', seed: 1, out: path.join(root, 'c') }), quiet);
    expect(fs.readFileSync(other.png).equals(fs.readFileSync(first.png))).toBe(false);
  });

  test('image i of a call is the image a call with seed + i makes alone (batching does not matter)', async () => {
    const batch = await sampleCommand(options({ numImages: 2, batchSize: 2, seed: 3, out: path.join(root, 'd') }), quiet);
    expect(batch.map((w) => path.basename(w.png))).toEqual(['sample-0000-seed3.png', 'sample-0001-seed4.png']);
    const [alone] = await sampleCommand(options({ seed: 4, out: path.join(root, 'e') }), quiet);
    const a = await sharp(batch[1].png).raw().toBuffer();
    const b = await sharp(alone.png).raw().toBuffer();
    // Batched kernels may round differently; pixels agree to one 8-bit level.
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThanOrEqual(1);
  });

  test('with resolution binning the model samples at a SANA bin and the image is resized back', async () => {
    const [w] = await sampleCommand(options({ width: 72, height: 40, binning: true, steps: 1, out: path.join(root, 'f') }), quiet);
    const meta = await sharp(w.png).metadata();
    expect([meta.width, meta.height]).toEqual([72, 40]);
    const side = readJsonFile(w.sidecar);
    expect(side.resolution_binning).toBe(true);
    // The 512 px table (sample_size 16): the bin nearest to 40:72 is wider than tall.
    expect(side.sample_width).toBeGreaterThan(side.sample_height);
    expect(side.sample_width % 32).toBe(0);
  });
});

describe('sampling from a training checkpoint', () => {
  test('the transformer comes from the checkpoint, the rest from the run config', async () => {
    const run = path.join(root, 'run');
    const ck = path.join(run, 'checkpoints', 'step-00000004');
    fs.mkdirSync(ck, { recursive: true });
    fs.cpSync(path.join(pipe, 'transformer'), path.join(ck, 'transformer'), { recursive: true });
    fs.writeFileSync(path.join(ck, 'trainer_state.json'), JSON.stringify({ step: 4 }));
    fs.writeFileSync(
      path.join(run, 'config.yaml'),
      YAML.stringify({
        output_dir: run,
        text_encoder: { pretrained: path.join(pipe, 'text_encoder'), tokenizer: path.join(pipe, 'tokenizer'), max_length: 300, complex_human_instruction: true },
        vae: { pretrained: path.join(pipe, 'vae') },
        data: { path: path.join(root, 'data') },
        train: { steps: 4 },
      }),
    );
    // A run folder opens its newest checkpoint; the result equals the pipeline folder's (same weights).
    const [fromRun] = await sampleCommand(options({ pipeline: null, checkpoint: run, negativePrompt: 'blurry', out: path.join(root, 'g') }), quiet);
    expect(baselinePng).not.toBeNull();
    expect(fs.readFileSync(fromRun.png).equals(fs.readFileSync(baselinePng!))).toBe(true);
    expect(readJsonFile(fromRun.sidecar).source).toEqual({ kind: 'checkpoint', path: ck, step: 4, ema: false });
  });
});

describe('errors', () => {
  test('a missing component is named', async () => {
    const broken = path.join(root, 'broken');
    fs.mkdirSync(broken);
    for (const part of ['model_index.json', 'transformer', 'text_encoder', 'tokenizer', 'scheduler']) fs.symlinkSync(path.join(pipe, part), path.join(broken, part));
    await expect(sampleCommand(options({ pipeline: broken }), quiet)).rejects.toThrow(/the pipeline component "vae" is missing/);
    fs.mkdirSync(path.join(broken, 'vae'));
    fs.copyFileSync(path.join(pipe, 'vae', 'config.json'), path.join(broken, 'vae', 'config.json'));
    await expect(sampleCommand(options({ pipeline: broken }), quiet)).rejects.toThrow(/broken\/vae: the pipeline component "vae" is incomplete \(expected diffusion_pytorch_model.safetensors or model.safetensors/);
    fs.rmSync(path.join(broken, 'model_index.json'));
    fs.writeFileSync(path.join(broken, 'model_index.json'), JSON.stringify({ ...readJsonFile(path.join(pipe, 'model_index.json')), vae: ['diffusers', 'AutoencoderKL'] }));
    await expect(sampleCommand(options({ pipeline: broken }), quiet)).rejects.toThrow(/component "vae" has class AutoencoderKL; expected AutoencoderDC/);
    fs.rmSync(path.join(broken, 'model_index.json'));
    await expect(sampleCommand(options({ pipeline: broken }), quiet)).rejects.toThrow(/model_index.json is missing/);
  });

  test('an unreadable or empty prompts file, no prompt, or no model source are clear errors', async () => {
    expect(() => readPrompts([], path.join(root, 'nope.txt'))).toThrow(/--prompts-file .*nope.txt: cannot read the file \(ENOENT\)/);
    const empty = path.join(root, 'empty.txt');
    fs.writeFileSync(empty, '# only a comment\n\n');
    expect(() => readPrompts([], empty)).toThrow(/holds no prompt/);
    expect(() => readPrompts([], null)).toThrow(/no prompt/);
    await expect(sampleCommand(options({ prompts: [], promptsFile: path.join(root, 'nope.txt') }), quiet)).rejects.toThrow(/cannot read/);
    await expect(sampleCommand(options({ pipeline: null }), quiet)).rejects.toThrow(/exactly one of --pipeline DIR and --checkpoint DIR/);
    await expect(sampleCommand(options({ pipeline: null, checkpoint: root }), quiet)).rejects.toThrow(/not a training checkpoint/);
  });

  test('a LoRA file that cannot be read is named', async () => {
    await expect(sampleCommand(options({ loras: [{ path: path.join(root, 'nope.safetensors'), scale: 0.5 }] }), quiet)).rejects.toThrow(/nope\.safetensors/);
  });
});
