/**
 * `sana sample`: prompts -> PNG files, from a diffusers-style pipeline folder (`--pipeline`) or one of
 * this project's training checkpoints (`--checkpoint`). argv -> typed options -> `generateImages`, with
 * one progress line per image; every image gets a JSON sidecar with every setting that decided it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { describeBackend, initBackend, tf } from '../../backend';
import { collect, withBackendOption, parsePositiveInt } from '../common';
import { consoleLines } from '../console';
import { writeFileAtomic } from '../../io/atomic';
import { LoadedSanaPipeline, loadRunCheckpoint, loadSanaPipeline } from '../../io/pretrained/pipeline';
import { pipelineComponents } from '../../pipelines/components';
import { DEFAULT_GUIDANCE_SCALE } from '../../pipelines/guidance';
import { GeneratedImage, SamplerName, TextToImageEvent, TextToImageSettings, generateImages } from '../../pipelines/textToImage';
import { writePng } from '../../pipelines/imageOutput';
import { LoraFileSpec, applyLoraFiles, parseLoraSpec } from '../../pipelines/loraLoading';

export interface SampleCommandOptions {
  /** Exactly one of `pipeline` / `checkpoint`. */
  pipeline: string | null;
  checkpoint: string | null;
  prompts: string[];
  promptsFile: string | null;
  negativePrompt: string;
  steps: number | null;
  cfg: number;
  sampler: SamplerName | null;
  seed: number;
  width: number | null;
  height: number | null;
  numImages: number;
  batchSize: number;
  binning: boolean;
  /** Checkpoints: sample with the EMA weights when the checkpoint has them (default true). */
  ema?: boolean;
  out: string;
  loras: LoraFileSpec[];
  backend: string | null;
}

export interface WrittenImage {
  png: string;
  sidecar: string;
}

function parseSeed(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`expected an integer >= 0, got "${v}"`);
  return n;
}

function parseScale(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`expected a number >= 0, got "${v}"`);
  return n;
}

/**
 * Prompts from `--prompt` then from `--prompts-file` (one per line; blank lines and lines starting with
 * `#` are skipped).
 */
export function readPrompts(prompts: string[], promptsFile: string | null): string[] {
  const all = [...prompts];
  if (promptsFile !== null) {
    let text: string;
    try {
      text = fs.readFileSync(promptsFile, 'utf8');
    } catch (e) {
      throw new Error(`--prompts-file ${promptsFile}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
    if (lines.length === 0) throw new Error(`--prompts-file ${promptsFile}: the file holds no prompt (one per line; # starts a comment)`);
    all.push(...lines);
  }
  if (all.length === 0) throw new Error('no prompt: give --prompt TEXT (repeatable) or --prompts-file FILE');
  return all;
}

/** `sample-0003-seed42.png`: position among the call's images and the seed of its noise. */
export function imageFileStem(image: GeneratedImage): string {
  return `sample-${String(image.imageIndex).padStart(4, '0')}-seed${image.seed ?? 'latents'}`;
}

/** The progress line of one image: `image 2/4  step 12/20  3.41 it/s`. */
export function formatSampleProgress(e: Extract<TextToImageEvent, { type: 'step' }>, totalImages: number): string {
  const first = e.images[0] + 1;
  const last = e.images[e.images.length - 1] + 1;
  const which = first === last ? `${first}` : `${first}-${last}`;
  return `image ${which}/${totalImages}  step ${String(e.step).padStart(String(e.steps).length)}/${e.steps}  ${e.itPerSec.toFixed(2)} it/s`;
}

/** Quotes an argument for a POSIX shell when it needs it. */
function shellQuote(s: string): string {
  return /^[\w./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** What a sidecar records: every setting that decided this image, and a command that remakes it alone. */
export function sidecarFor(image: GeneratedImage, settings: TextToImageSettings, opts: SampleCommandOptions, pipe: LoadedSanaPipeline, backend: string | null): Record<string, unknown> {
  const negative = settings.negative_prompts ? settings.negative_prompts[image.promptIndex] : null;
  const sourceFlag = pipe.source.kind === 'pipeline' ? '--pipeline' : '--checkpoint';
  const argv = [
    'sana', 'sample', sourceFlag, pipe.source.path,
    '--prompt', image.prompt,
    ...(negative ? ['--negative-prompt', negative] : []),
    '--steps', String(settings.steps),
    '--cfg', String(settings.guidance_scale),
    '--sampler', settings.sampler,
    '--seed', String(image.seed),
    '--width', String(settings.width),
    '--height', String(settings.height),
    ...(settings.resolution_binning ? [] : ['--no-binning']),
    ...(pipe.source.kind === 'checkpoint' && !pipe.source.ema ? ['--no-ema'] : []),
    ...opts.loras.flatMap((l) => ['--lora', `${path.resolve(l.path)}:${l.scale}`]),
    ...(backend ? ['--backend', backend] : []),
  ];
  return {
    prompt: image.prompt,
    negative_prompt: negative,
    seed: image.seed,
    steps: settings.steps,
    guidance_scale: settings.guidance_scale,
    sampler: settings.sampler,
    width: settings.width,
    height: settings.height,
    sample_width: settings.sample_width,
    sample_height: settings.sample_height,
    resolution_binning: settings.resolution_binning,
    image_index: image.imageIndex,
    prompt_index: image.promptIndex,
    source: pipe.source,
    loras: opts.loras.map((l) => ({ path: path.resolve(l.path), scale: l.scale })),
    complex_human_instruction: settings.complex_human_instruction,
    max_sequence_length: settings.max_sequence_length,
    vae_scaling_factor: settings.vae_scaling_factor,
    vae_tiling: settings.vae_tiling,
    timesteps: settings.timesteps,
    sigmas: settings.sigmas,
    scheduler: settings.scheduler,
    backend,
    command: argv.map(shellQuote).join(' '),
  };
}

/** Opens the model source, applies the LoRA files, samples every image and writes PNG + sidecar pairs. */
export async function sampleCommand(opts: SampleCommandOptions, print: (line: string, inPlace?: boolean) => void = consoleLine()): Promise<WrittenImage[]> {
  // 1. Everything that can be checked without a model.
  if ((opts.pipeline === null) === (opts.checkpoint === null)) throw new Error('give exactly one of --pipeline DIR and --checkpoint DIR');
  const prompts = readPrompts(opts.prompts, opts.promptsFile);
  print(describeBackend(await initBackend(opts.backend ?? undefined)));

  // 2. Models.
  const pipe = opts.pipeline !== null ? loadSanaPipeline(opts.pipeline) : loadRunCheckpoint(opts.checkpoint!, { ema: opts.ema ?? true });
  try {
    const loras = applyLoraFiles(pipe.transformer, opts.loras);
    try {
      const components = pipelineComponents(pipe);
      const { promptEncoder } = components;
      const total = prompts.length * opts.numImages;
      print(`${pipe.source.kind} ${pipe.source.path}: ${prompts.length} prompt(s), ${total} image(s)`);

      // 3. Sampling, with a progress line per image (batch).
      let result: Awaited<ReturnType<typeof generateImages>>;
      try {
        result = await generateImages(
          components,
          {
            prompts,
            negativePrompt: opts.negativePrompt,
            guidanceScale: opts.cfg,
            sampler: opts.sampler ?? undefined,
            steps: opts.steps ?? undefined,
            seed: opts.seed,
            height: opts.height ?? undefined,
            width: opts.width ?? undefined,
            numImagesPerPrompt: opts.numImages,
            batchSize: opts.batchSize,
            // --no-binning turns it off; otherwise the pipeline bins where the model has SANA bins.
            resolutionBinning: opts.binning ? undefined : false,
            releaseTextEncoder: true,
            onProgress: (e) => {
              if (e.type === 'step') print(formatSampleProgress(e, total), e.step < e.steps);
            },
          },
        );
      } finally {
        promptEncoder.release();
      }
      const backend = tf.getBackend();

      // 4. Files: PNG and its sidecar, named by image number and seed.
      fs.mkdirSync(opts.out, { recursive: true });
      const written: WrittenImage[] = [];
      for (const image of result.images) {
        const stem = path.join(opts.out, imageFileStem(image));
        await writePng(`${stem}.png`, image);
        writeFileAtomic(`${stem}.json`, `${JSON.stringify(sidecarFor(image, result.settings, opts, pipe, backend), null, 2)}\n`);
        written.push({ png: `${stem}.png`, sidecar: `${stem}.json` });
        print(`wrote ${stem}.png`);
      }
      return written;
    } finally {
      loras.remove();
    }
  } finally {
    pipe.dispose();
  }
}

/** Prints lines; on a terminal, `inPlace` lines are rewritten until a final one replaces them. */
function consoleLine(): (line: string, inPlace?: boolean) => void {
  const out = consoleLines({ clearProgress: true });
  return (line, inPlace = false) => (inPlace ? out.progress(line) : out.line(line));
}

/** Registers `sana sample`; `action` is replaceable so tests can check the parsed options. */
export function registerSample(program: Command, action: (opts: SampleCommandOptions) => Promise<unknown> = (o) => sampleCommand(o)): void {
  const cmd = program
    .command('sample')
    .description('generate images from prompts with a pipeline folder or a training checkpoint')
    .option('--pipeline <dir>', 'diffusers-style pipeline folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/)')
    .option('--checkpoint <dir>', "a training checkpoint (or run folder: its newest checkpoint); the other components come from the run's config.yaml")
    .option('-p, --prompt <text>', 'a prompt (repeatable)', collect, [])
    .option('--prompts-file <file>', 'more prompts, one per line (# starts a comment)')
    .option('--negative-prompt <text>', 'negative prompt for classifier-free guidance', '')
    .addOption(new Option('--steps <n>', 'sampling steps (default: 20 for dpm, 28 for euler)').argParser(parsePositiveInt))
    .addOption(new Option('--cfg <scale>', 'classifier-free guidance scale (off at <= 1)').argParser(parseScale).default(DEFAULT_GUIDANCE_SCALE))
    .addOption(new Option('--sampler <name>', "sampler (default: the pipeline scheduler's)").choices(['dpm', 'euler']))
    .addOption(new Option('--seed <n>', 'seed of the first image; image i uses seed + i').argParser(parseSeed).default(0))
    .addOption(new Option('--width <px>', 'image width (default: the model resolution)').argParser(parsePositiveInt))
    .addOption(new Option('--height <px>', 'image height (default: the model resolution)').argParser(parsePositiveInt))
    .addOption(new Option('-n, --num-images <n>', 'images per prompt').argParser(parsePositiveInt).default(1))
    .addOption(new Option('--batch-size <n>', 'images denoised together').argParser(parsePositiveInt).default(1))
    .option('--no-binning', "sample at the requested size instead of the nearest SANA aspect-ratio bin")
    .option('--no-ema', "with --checkpoint: the raw weights instead of the EMA weights the checkpoint may hold")
    .option('-o, --out <dir>', 'output folder', 'samples')
    .option('--lora <file[:scale]>', 'LoRA file to apply, with an optional scale (repeatable)', collect, []);
  withBackendOption(cmd).action(async (o: Record<string, any>) => {
    await action({
      pipeline: o.pipeline ?? null,
      checkpoint: o.checkpoint ?? null,
      prompts: o.prompt,
      promptsFile: o.promptsFile ?? null,
      negativePrompt: o.negativePrompt,
      steps: o.steps ?? null,
      cfg: o.cfg,
      sampler: o.sampler ?? null,
      seed: o.seed,
      width: o.width ?? null,
      height: o.height ?? null,
      numImages: o.numImages,
      batchSize: o.batchSize,
      binning: o.binning,
      ema: o.ema,
      out: o.out,
      loras: (o.lora as string[]).map(parseLoraSpec),
      backend: o.backend ?? null,
    });
  });
}
