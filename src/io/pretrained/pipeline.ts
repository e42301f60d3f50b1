/**
 * Opening a SANA pipeline folder in the layout diffusers' `SanaPipeline.save_pretrained` writes
 * (e.g. `Efficient-Large-Model/Sana_600M_512px_diffusers`): `model_index.json` naming each component's
 * library and class, and one subfolder per component:
 *
 *   transformer/   SanaTransformer2DModel   config.json + diffusion_pytorch_model.safetensors (or shards)
 *   vae/           AutoencoderDC            config.json + diffusion_pytorch_model.safetensors
 *   text_encoder/  Gemma2Model              config.json + model.safetensors (or shards)
 *   tokenizer/     GemmaTokenizer(Fast)     tokenizer.json (+ tokenizer_config.json)
 *   scheduler/     DPMSolverMultistepScheduler | FlowMatchEulerDiscreteScheduler   scheduler_config.json
 *
 * Mirrors `DiffusionPipeline.from_pretrained` for this one pipeline class: the index decides which
 * components exist, and a component the index lists but the folder lacks is an error naming both.
 * The text encoder is returned as a loader so a caller can free it once prompts are encoded.
 *
 * A training checkpoint of this project (`<run>/checkpoints/step-N/transformer/`) opens the same way:
 * the transformer from the checkpoint, everything else (text encoder, tokenizer, autoencoder and its
 * scale, flow shift, prompt settings) from the run's resolved `config.yaml`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readJsonFile } from '../json';
import { SanaTransformer2DModel } from '../../models/dit';
import { AutoencoderDC } from '../../models/dcae';
import { Gemma2Model, GemmaTokenizer } from '../../models/text';
import { FlowSchedulerConfig, flowDpmSolverForRun } from '../../schedulers/config';
import { TrainConfig, loadTrainConfig } from '../../config/train';
import { loadEmaWeights, loadSanaTransformer } from './transformer';
import { loadAutoencoderDC } from './autoencoder';
import { loadGemma2Model, loadGemmaTokenizer, seededGemma2Model } from './gemma';
import { readSchedulerConfig } from './scheduler';
import { isDir } from './weights';

/** Pipeline classes whose folders this loader understands (same components, same call). */
const PIPELINE_CLASSES = ['SanaPipeline', 'SanaPAGPipeline'];

/** The classes each component may have, as `model_index.json` names them. */
const COMPONENT_CLASSES: Record<string, string[]> = {
  transformer: ['SanaTransformer2DModel'],
  vae: ['AutoencoderDC'],
  text_encoder: ['Gemma2Model', 'Gemma2ForCausalLM'],
  tokenizer: ['GemmaTokenizer', 'GemmaTokenizerFast'],
  scheduler: ['DPMSolverMultistepScheduler', 'FlowMatchEulerDiscreteScheduler'],
};

/** The parsed `model_index.json`: component name -> [library, class] (null for an absent component). */
export interface PipelineIndex {
  className: string;
  components: Record<string, [string, string] | null>;
}

/** A pipeline folder, opened. Free the models with `dispose()`. */
export interface LoadedSanaPipeline {
  dir: string;
  index: PipelineIndex;
  transformer: SanaTransformer2DModel;
  /** Null when the index declares no autoencoder (a pixel-space model). */
  vae: AutoencoderDC | null;
  tokenizer: GemmaTokenizer;
  /** The folder of the text encoder. */
  textEncoderDir: string;
  /** Loads the text encoder (a new model per call; the caller owns and disposes it). */
  loadTextEncoder(): Gemma2Model;
  scheduler: FlowSchedulerConfig;
  /** Prompt encoding the model expects: the complex human instruction on/off and the kept length. */
  prompt: { complexHumanInstruction: boolean; maxSequenceLength: number };
  /** Latent scale overriding the autoencoder config's (a run may set its own); null = the config's. */
  vaeScalingFactor: number | null;
  /** Where the weights came from (recorded next to generated images). */
  source: { kind: 'pipeline' | 'checkpoint'; path: string; step?: number; /** Checkpoints: whether the EMA weights were loaded. */ ema?: boolean };
  /** Disposes the transformer and the autoencoder. */
  dispose(): void;
}

/** diffusers' `SanaPipeline.__call__` defaults. */
const PIPELINE_PROMPT_DEFAULTS = { complexHumanInstruction: true, maxSequenceLength: 300 };

export interface LoadSanaPipelineOptions {
  /** Use this tokenizer instead of `<dir>/tokenizer/` (which then need not exist). */
  tokenizer?: GemmaTokenizer;
  /** Use this transformer folder (or an already loaded model) instead of `<dir>/transformer/`. */
  transformer?: string | SanaTransformer2DModel;
}


/** Reads and checks `<dir>/model_index.json`. */
export function readPipelineIndex(dir: string): PipelineIndex {
  const file = path.join(dir, 'model_index.json');
  if (!isDir(dir)) throw new Error(`${dir}: pipeline folder not found`);
  if (!fs.existsSync(file)) throw new Error(`${dir}: not a pipeline folder (model_index.json is missing; a diffusers pipeline folder holds model_index.json, transformer/, vae/, text_encoder/, tokenizer/ and scheduler/)`);
  const raw = readJsonFile(file) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${file}: expected a JSON object`);
  const className = raw._class_name;
  if (typeof className !== 'string' || !PIPELINE_CLASSES.includes(className)) {
    throw new Error(`${file}: _class_name is ${JSON.stringify(className)}; expected one of ${PIPELINE_CLASSES.join(', ')}`);
  }
  const components: PipelineIndex['components'] = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key.startsWith('_')) continue;
    if (value === null || (Array.isArray(value) && value.every((v) => v === null))) {
      components[key] = null;
      continue;
    }
    if (!Array.isArray(value) || value.length !== 2 || value.some((v) => typeof v !== 'string')) {
      throw new Error(`${file}: field "${key}" is ${JSON.stringify(value)}; expected [library, class]`);
    }
    components[key] = [value[0], value[1]];
  }
  for (const [name, classes] of Object.entries(COMPONENT_CLASSES)) {
    const entry = components[name];
    if (entry === undefined) {
      if (name === 'vae') continue;
      throw new Error(`${file}: the component "${name}" is not listed (expected [library, ${classes.join(' | ')}])`);
    }
    if (entry === null) {
      if (name === 'vae') continue;
      throw new Error(`${file}: the component "${name}" is null; this pipeline needs a ${classes.join(' or ')}`);
    }
    if (!classes.includes(entry[1])) throw new Error(`${file}: component "${name}" has class ${entry[1]}; expected ${classes.join(' or ')}`);
  }
  return { className, components };
}

/** A component's subfolder, which must exist and hold `needs` (any one of them). */
function componentDir(dir: string, name: string, needs: string[]): string {
  const sub = path.join(dir, name);
  if (!isDir(sub)) throw new Error(`${dir}: the pipeline component "${name}" is missing (model_index.json lists it, but there is no ${name}/ folder)`);
  if (!needs.some((f) => fs.existsSync(path.join(sub, f)))) {
    throw new Error(`${sub}: the pipeline component "${name}" is incomplete (expected ${needs.join(' or ')})`);
  }
  return sub;
}

const WEIGHT_FILES = ['diffusion_pytorch_model.safetensors', 'model.safetensors', 'diffusion_pytorch_model.safetensors.index.json', 'model.safetensors.index.json'];

/**
 * Opens a SANA pipeline folder: checks every component is present before loading any weights (so a
 * missing one fails fast), then loads the transformer and the autoencoder. The text encoder is loaded
 * on demand with `loadTextEncoder()`.
 */
export function loadSanaPipeline(dir: string, opts: LoadSanaPipelineOptions = {}): LoadedSanaPipeline {
  const index = readPipelineIndex(dir);
  // 1. Every component present (cheap checks first).
  const transformerDir = typeof opts.transformer === 'string' ? opts.transformer : opts.transformer ? null : componentDir(dir, 'transformer', ['config.json']);
  if (transformerDir && typeof opts.transformer !== 'string') componentDir(dir, 'transformer', WEIGHT_FILES);
  const vaeDir = index.components.vae ? componentDir(dir, 'vae', ['config.json']) : null;
  if (vaeDir) componentDir(dir, 'vae', WEIGHT_FILES);
  const textEncoderDir = componentDir(dir, 'text_encoder', ['config.json']);
  componentDir(dir, 'text_encoder', WEIGHT_FILES);
  const schedulerDir = componentDir(dir, 'scheduler', ['scheduler_config.json']);
  const tokenizerDir = opts.tokenizer ? null : componentDir(dir, 'tokenizer', ['tokenizer.json']);

  // 2. Configs and small parts.
  const scheduler = readSchedulerConfig(schedulerDir).config;
  if (scheduler._class_name !== index.components.scheduler![1]) {
    throw new Error(`${schedulerDir}: scheduler_config.json is a ${scheduler._class_name} but model_index.json names ${index.components.scheduler![1]}`);
  }
  const tokenizer = opts.tokenizer ?? loadGemmaTokenizer(tokenizerDir!);

  // 3. Models.
  const transformer = typeof opts.transformer === 'object' ? opts.transformer : loadSanaTransformer(transformerDir!);
  let vae: AutoencoderDC | null = null;
  try {
    vae = vaeDir ? loadAutoencoderDC(vaeDir) : null;
  } catch (e) {
    if (typeof opts.transformer !== 'object') transformer.dispose();
    throw e;
  }
  return {
    dir,
    index,
    transformer,
    vae,
    tokenizer,
    textEncoderDir,
    loadTextEncoder: () => loadGemma2Model(textEncoderDir),
    scheduler,
    prompt: { ...PIPELINE_PROMPT_DEFAULTS },
    vaeScalingFactor: null,
    source: { kind: 'pipeline', path: path.resolve(dir) },
    dispose: () => {
      if (typeof opts.transformer !== 'object') transformer.dispose();
      vae?.dispose();
    },
  };
}

const STEP_DIR = /^step-(\d+)$/;

/** A checkpoint folder, or a run folder's newest complete checkpoint; and the run's config file. */
export function resolveRunCheckpoint(dir: string): { checkpoint: string; step: number | null; configFile: string } {
  const abs = path.resolve(dir);
  if (!isDir(abs)) throw new Error(`${dir}: checkpoint folder not found`);
  let checkpoint = abs;
  if (!fs.existsSync(path.join(abs, 'trainer_state.json'))) {
    const ckDir = path.join(abs, 'checkpoints');
    const steps = isDir(ckDir)
      ? fs
          .readdirSync(ckDir)
          .map((n) => ({ n, m: STEP_DIR.exec(n) }))
          .filter(({ n, m }) => m && fs.existsSync(path.join(ckDir, n, 'trainer_state.json')))
          .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
      : [];
    if (steps.length === 0) throw new Error(`${dir}: not a training checkpoint (no trainer_state.json) nor a run folder with complete checkpoints under checkpoints/`);
    checkpoint = path.join(ckDir, steps[steps.length - 1].n);
  }
  const m = STEP_DIR.exec(path.basename(checkpoint));
  // A checkpoint lives in <run>/checkpoints/; the run's resolved config is <run>/config.yaml.
  const candidates = [path.join(checkpoint, 'config.yaml'), path.join(checkpoint, '..', '..', 'config.yaml')];
  const configFile = candidates.find((f) => fs.existsSync(f));
  if (!configFile) throw new Error(`${checkpoint}: the run's config.yaml was not found (looked for ${candidates.map((f) => path.resolve(f)).join(' and ')}); it names the text encoder and autoencoder to sample with`);
  return { checkpoint, step: m ? Number(m[1]) : null, configFile: path.resolve(configFile) };
}

/** The folder holding `tokenizer.json`, from a config value naming the folder or the file. */
function tokenizerFolder(p: string | null): string | undefined {
  if (p === null) return undefined;
  return p.endsWith('.json') ? path.dirname(p) : p;
}

/**
 * Opens one of this project's training checkpoints for sampling: `dir` is a checkpoint folder
 * (`<run>/checkpoints/step-N`) or a run folder (its newest checkpoint). The transformer comes from the
 * checkpoint; the text encoder, tokenizer, autoencoder, latent scale, flow shift and prompt settings
 * from the run's `config.yaml`, so images match the run's own validation samples.
 */
export function loadRunCheckpoint(dir: string, opts: RunCheckpointOptions = {}): LoadedSanaPipeline {
  return openRunCheckpoint(dir, opts).pipeline;
}

export interface RunCheckpointOptions {
  /** Use this transformer instead of the checkpoint's (which then need not exist; no EMA weights are loaded). */
  transformer?: SanaTransformer2DModel;
  /** Load the EMA weights when the checkpoint has them. Default true. */
  ema?: boolean;
}

/** `loadRunCheckpoint`, plus the run's resolved config (for callers that also need its training settings). */
export function openRunCheckpoint(dir: string, opts: RunCheckpointOptions = {}): { pipeline: LoadedSanaPipeline; config: TrainConfig } {
  const { checkpoint, step, configFile } = resolveRunCheckpoint(dir);
  const c: TrainConfig = loadTrainConfig(configFile);
  if (c.task !== 'flow') throw new Error(`${configFile}: task is "${c.task}"; sampling needs a run that trained a transformer (task: flow)`);
  const transformerDir = path.join(checkpoint, 'transformer');
  if (!opts.transformer && !isDir(transformerDir)) {
    throw new Error(`${checkpoint}: no transformer/ folder (a LoRA run saves adapters only: sample its base pipeline with --pipeline and the adapter with --lora)`);
  }
  // The run's frozen text encoder: a Gemma-2 folder, or the seeded random one the run was trained with.
  const textEncoderDir = c.text_encoder.pretrained;
  const randomEncoder = c.text_encoder.config;
  if (!textEncoderDir && !randomEncoder) {
    throw new Error(`${configFile}: neither "text_encoder.pretrained" nor "text_encoder.config" is set; sampling needs the Gemma-2 encoder the run was trained with`);
  }
  if (textEncoderDir && !isDir(textEncoderDir)) throw new Error(`${configFile}: field "text_encoder.pretrained": folder ${path.resolve(textEncoderDir)} not found`);
  const encoderSeed = c.text_encoder.init_seed ?? c.seed;
  const loadTextEncoder = textEncoderDir
    ? () => loadGemma2Model(textEncoderDir)
    : () => seededGemma2Model(randomEncoder!, encoderSeed, `${configFile} (text_encoder.config)`);
  if (c.vae.pretrained && !isDir(c.vae.pretrained)) throw new Error(`${configFile}: field "vae.pretrained": folder ${path.resolve(c.vae.pretrained)} not found`);
  const tokenizer = loadGemmaTokenizer(tokenizerFolder(c.text_encoder.tokenizer));
  const scheduler = flowDpmSolverForRun(c.flow, `${configFile} (flow)`);
  const transformer = opts.transformer ?? loadSanaTransformer(transformerDir);
  // EMA weights, when the run kept them, are what its validation images show.
  const emaFile = path.join(checkpoint, 'ema.safetensors');
  const useEma = !opts.transformer && (opts.ema ?? true) && fs.existsSync(emaFile);
  let vae: AutoencoderDC | null = null;
  try {
    if (useEma) loadEmaWeights(transformer, emaFile);
    vae = c.vae.pretrained ? loadAutoencoderDC(c.vae.pretrained) : null;
  } catch (e) {
    if (!opts.transformer) transformer.dispose();
    throw e;
  }
  const pipeline: LoadedSanaPipeline = {
    dir: checkpoint,
    index: { className: 'SanaPipeline', components: {} },
    transformer,
    vae,
    tokenizer,
    textEncoderDir: textEncoderDir ?? `seeded random Gemma-2 (${configFile}, seed ${encoderSeed})`,
    loadTextEncoder,
    scheduler,
    prompt: { complexHumanInstruction: c.text_encoder.complex_human_instruction, maxSequenceLength: c.text_encoder.max_length },
    vaeScalingFactor: c.vae.scaling_factor,
    source: { kind: 'checkpoint', path: checkpoint, ...(step !== null ? { step } : {}), ema: useEma },
    dispose: () => {
      if (!opts.transformer) transformer.dispose();
      vae?.dispose();
    },
  };
  return { pipeline, config: c };
}
