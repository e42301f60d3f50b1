/**
 * `sana train`: a validated run config -> dataset, caches, models, optimizer -> the trainer loop.
 * Plays the part of NVlabs/Sana `train_scripts/train.py`'s `main()`, but every component is built by a
 * named function from the config, and nothing is global.
 *
 * Two tasks share the loop:
 * - 'flow': a SanaTransformer2DModel learns the rectified-flow velocity on DC-AE latents (or on pixels
 *   when no autoencoder is configured), conditioned on Gemma-2 caption states;
 * - 'autoencoder': an AutoencoderDC learns to reconstruct its images (MSE or L1).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { tf, Tensor4D, Tensor2D, Tensor1D, Tensor3D } from '../backend';
import { Module, Parameter } from '../nn/module';
import type { TrainConfig } from '../config/train';
import { writeFileAtomic } from '../io/atomic';
import { saveSanaTransformer } from '../io/pretrained/transformer';
import { loadWeightsInto } from '../io/pretrained/weights';
import { readJsonFile } from '../io/json';
import { SanaTransformer2DModel, parseSanaTransformerConfig, sanaTransformerPreset, SanaTransformerConfig } from '../models/dit';
import { AutoencoderDC, autoencoderDCPreset, parseAutoencoderDCConfig } from '../models/dcae';
import { loadAutoencoderDC, saveAutoencoderDC } from '../io/pretrained/autoencoder';
import { ImageDataset, BatchSource as DataBatchSource, Batch, disposeBatch, LatentCache, squareBucketTable, identityHash, CaptionChoiceOptions } from '../data';
import { promptEncoderFor } from './trainComponents';
import { flowDpmSolverForRun } from '../schedulers/config';
import { autoencoderValidation, flowValidation } from './trainValidation';
import { Trainer, BatchSource, Objective } from '../training/trainer';
import { FlowBatch, NullCaption, PixelBatch, flowObjective, reconstructionObjective } from '../training/objectives';
import { createOptimizer } from '../training/optim';
import { lrScheduleFromConfig } from '../training/lrSchedule';
import { RunFolder } from '../training/runFolder';
import { TrainEventHandler } from '../training/events';
import { TimestepSampling } from '../training/flow';
import { createWandbReporter } from '../training/wandb';

export interface TrainRunOptions {
  config: TrainConfig;
  /** The resolved config as YAML, saved in the run folder. */
  configText: string;
  /** `latest`, a checkpoint folder, or a run folder. */
  resume?: string | null;
  /** Stop (with a checkpoint) after this many steps. */
  stopAt?: number;
  onEvent?: TrainEventHandler;
  /** Receives a stop function (e.g. for Ctrl-C: the loop saves a checkpoint and returns). */
  onStopHandle?: (stop: () => void) => void;
  /**
   * Chooses what trains instead of every parameter of the model, and how it is checkpointed (LoRA
   * fine-tuning: the adapters train, the base stays frozen and is not saved). Called once the model
   * is built (and, for a pretrained model, loaded).
   */
  trainable?: (model: Module) => TrainableSelection;
}

/** The parameters a run optimizes and how they are saved into / restored from a checkpoint folder. */
export interface TrainableSelection {
  params: Array<[string, Parameter]>;
  save(dir: string): void;
  load(dir: string): void;
  dispose(): void;
  /** Runs `f` (validation sampling) with training-only behaviour such as adapter dropout switched off. */
  evaluating?<T>(f: () => Promise<T>): Promise<T>;
}

export interface TrainRunResult {
  runDir: string;
  step: number;
  checkpoint: string | null;
}

/**
 * Settings that change the trajectory; a resumed run with a different digest is reported. The total
 * step count counts only when the LR schedule follows it (cosine): extending a constant-LR run with
 * --resume continues exactly the trajectory a longer run would have taken.
 */
export function trajectoryDigest(c: TrainConfig): string {
  const train = { ...c.train, log_every: undefined, steps: c.lr_schedule.type === 'cosine' ? c.train.steps : undefined };
  const relevant = { task: c.task, seed: c.seed, model: c.model, vae: c.vae, text_encoder: c.text_encoder, data: c.data, optimizer: c.optimizer, lr_schedule: c.lr_schedule, train, flow: c.flow, ...(c.lora ? { lora: c.lora } : {}) };
  return crypto.createHash('sha256').update(JSON.stringify(relevant)).digest('hex').slice(0, 16);
}

/** The SanaTransformer2DModel config of a run: pretrained config.json, or preset + overrides. */
export function transformerConfigOf(c: TrainConfig): SanaTransformerConfig {
  if (c.model.pretrained) {
    const raw = readJsonFile(path.join(c.model.pretrained, 'config.json'));
    return parseSanaTransformerConfig({ ...raw, ...c.model.config }, path.join(c.model.pretrained, 'config.json'));
  }
  if (!c.model.preset) return parseSanaTransformerConfig(c.model.config, 'model.config');
  return sanaTransformerPreset(c.model.preset, parseSanaTransformerConfig({ ...sanaTransformerPreset(c.model.preset), ...c.model.config }, 'model.config'));
}

function buildTransformer(c: TrainConfig): SanaTransformer2DModel {
  const model = new SanaTransformer2DModel(transformerConfigOf(c));
  if (c.model.pretrained) loadWeightsInto(model, c.model.pretrained);
  else model.initialize(c.model.init_seed ?? c.seed);
  model.gradientCheckpointing = c.model.gradient_checkpointing;
  return model;
}

function buildAutoencoder(c: TrainConfig): AutoencoderDC {
  if (c.model.pretrained) return loadAutoencoderDC(c.model.pretrained);
  const config = c.model.preset ? autoencoderDCPreset(c.model.preset, c.model.config) : parseAutoencoderDCConfig(c.model.config, 'model.config');
  return new AutoencoderDC(config).initialize(c.model.init_seed ?? c.seed);
}

function captionChoiceOf(c: TrainConfig): CaptionChoiceOptions {
  const cap = c.data.caption;
  if (cap.mode === 'proportion') return { mode: 'proportion', proportions: cap.proportions ?? {} };
  return { mode: cap.mode, threshold: cap.threshold, temperature: cap.temperature };
}

function samplingOf(c: TrainConfig): TimestepSampling {
  const f = c.flow;
  return { weightingScheme: f.weighting_scheme, logitMean: f.logit_mean, logitStd: f.logit_std, modeScale: f.mode_scale, flowShift: f.flow_shift, numTrainTimesteps: f.num_train_timesteps, discrete: f.discrete_timesteps };
}

/** Host caption embeddings -> the [B, L, D] / [B, L] tensors a batch carries. */
function stackEmbeddings(rows: Array<{ embeds: Float32Array; mask: Int32Array; length: number; dim: number }>): { embeddings: Tensor3D; mask: Tensor2D } {
  const { length, dim } = rows[0];
  const e = new Float32Array(rows.length * length * dim);
  const m = new Int32Array(rows.length * length);
  rows.forEach((r, i) => {
    e.set(r.embeds, i * length * dim);
    m.set(r.mask, i * length);
  });
  return { embeddings: tf.tensor3d(e, [rows.length, length, dim]), mask: tf.tensor2d(m, [rows.length, length], 'int32') };
}

/** Images whose latents estimate an autoencoder's scaling factor. */
const SCALING_SAMPLE_SIZE = 256;

/** `n` items spread evenly over the data set (of the first item's size), as [n, H, W, C] in [-1, 1]. */
async function fixedImageSample(dataset: ImageDataset, n: number): Promise<Tensor4D> {
  const first = dataset.items[0].bucket;
  const same = dataset.items.map((it, i) => ({ it, i })).filter(({ it }) => it.bucket.height === first.height && it.bucket.width === first.width);
  const k = Math.min(n, same.length);
  return dataset.pixels(Array.from({ length: k }, (_, j) => same[Math.floor((j * same.length) / k)].i));
}

/**
 * 1 / std of the latents of `images`: scaling the latents by it gives the flow model unit-variance
 * data, as Stable Diffusion and DC-AE chose their `scaling_factor` (rounded to 5 digits, as theirs).
 */
function latentScalingFactor(ae: AutoencoderDC, images: Tensor4D): number {
  const chunks: number[][] = [];
  for (let start = 0; start < images.shape[0]; start += 64) {
    const part = tf.tidy(() => {
      const z = ae.encode(images.slice([start, 0, 0, 0], [Math.min(64, images.shape[0] - start), -1, -1, -1]) as Tensor4D);
      return tf.stack([z.sum(), z.square().sum(), tf.scalar(z.size)]);
    });
    chunks.push(Array.from(part.dataSync()));
    part.dispose();
  }
  const [sum, sq, count] = chunks.reduce((a, b) => a.map((v, i) => v + b[i]), [0, 0, 0]);
  const variance = sq / count - (sum / count) ** 2;
  return Number((1 / Math.sqrt(Math.max(variance, 1e-12))).toPrecision(5));
}

/** Rewrites `scaling_factor` in a saved vae folder's config.json. */
function writeScalingFactor(vaeDir: string, value: number): void {
  const file = path.join(vaeDir, 'config.json');
  const json = readJsonFile(file) as Record<string, unknown>;
  json.scaling_factor = value;
  writeFileAtomic(file, `${JSON.stringify(json, null, 2)}\n`);
}

/** Adapts the data loader's batches (indexed by micro-step) to the trainer's FlowBatch. */
class FlowBatches implements BatchSource<FlowBatch & { raw: Batch }> {
  constructor(private readonly src: DataBatchSource) {}
  async get(index: number): Promise<FlowBatch & { raw: Batch }> {
    const raw = await this.src.batch(index);
    if (!raw.text) throw new Error('flow training needs caption embeddings; the batch source has no caption encoder');
    return { ids: raw.imageIds, latents: raw.x, captionEmbeds: raw.text.embeddings as Tensor3D, captionMask: raw.text.mask as Tensor2D, raw };
  }
  release(b: { raw: Batch }): void {
    disposeBatch(b.raw);
  }
}

class PixelBatches implements BatchSource<PixelBatch & { raw: Batch }> {
  constructor(private readonly src: DataBatchSource) {}
  async get(index: number): Promise<PixelBatch & { raw: Batch }> {
    const raw = await this.src.batch(index);
    return { ids: raw.imageIds, pixels: raw.x, raw };
  }
  release(b: { raw: Batch }): void {
    disposeBatch(b.raw);
  }
}

/** Runs (or resumes) a training run described by a validated config. */
export async function runTraining(opts: TrainRunOptions): Promise<TrainRunResult> {
  const c = opts.config;
  const emit: TrainEventHandler = (e) => opts.onEvent?.(e);
  const warn = (text: string) => emit({ type: 'message', level: 'warn', text });
  const info = (text: string) => emit({ type: 'message', level: 'info', text });
  if (c.lora && !opts.trainable) throw new Error('the config has a lora section: LoRA fine-tuning runs with `sana finetune`');

  // 1. Run folder first: an unwritable output_dir fails before any loading.
  const run = RunFolder.open(c.output_dir);
  run.writeConfig(opts.configText);
  const cacheDir = c.data.cache_dir ?? path.join(run.dir, 'cache');
  const disposers: Array<() => void> = [];

  try {
    // 2. Data.
    const dataset = await ImageDataset.open(c.data.path, { buckets: squareBucketTable(c.data.resolution), channels: c.data.channels as 1 | 3, limit: c.data.limit ?? undefined, onWarning: warn });
    info(`dataset ${c.data.path}: ${dataset.items.length} images`);
    const microBatch = c.data.batch_size;

    // 3. Model, objective and batches for the task.
    let model: Module;
    let objective: Objective<any>;
    let batches: BatchSource<any>;
    let saveModel: (dir: string) => void;
    let loadModel: (dir: string) => void;
    let validate: ((step: number) => Promise<string>) | null = null;
    if (c.task === 'autoencoder') {
      const ae = buildAutoencoder(c);
      model = ae;
      disposers.push(() => ae.dispose());
      const src = new DataBatchSource(dataset, { seed: c.seed, batchSize: microBatch, captionChoice: captionChoiceOf(c), onWarning: warn });
      batches = new PixelBatches(src);
      objective = reconstructionObjective(ae, c.train.reconstruction_loss);
      const scalingSample = c.train.estimate_scaling_factor ? await fixedImageSample(dataset, SCALING_SAMPLE_SIZE) : null;
      if (scalingSample) disposers.push(() => scalingSample.dispose());
      saveModel = (dir) => {
        saveAutoencoderDC(ae, path.join(dir, 'vae'));
        if (scalingSample) writeScalingFactor(path.join(dir, 'vae'), latentScalingFactor(ae, scalingSample));
      };
      loadModel = (dir) => loadWeightsInto(ae, path.join(dir, 'vae'));
      validate = autoencoderValidation(c, ae, dataset, run.samplesDir);
    } else {
      const dit = buildTransformer(c);
      model = dit;
      disposers.push(() => dit.dispose());
      // 3a. Latents through the autoencoder once, into the cache (pixel space without one).
      let latents: LatentCache | undefined;
      let vae: AutoencoderDC | null = null;
      if (c.vae.pretrained) {
        const ae = loadAutoencoderDC(c.vae.pretrained);
        // Kept for validation grids only; otherwise freed once the latents are cached.
        if (c.validation.every !== null) vae = ae;
        const scale = c.vae.scaling_factor ?? ae.config.scaling_factor;
        const identity = `${identityHash({ dir: path.resolve(c.vae.pretrained), config: ae.config, files: fs.readdirSync(c.vae.pretrained).map((f) => [f, fs.statSync(path.join(c.vae.pretrained!, f)).size]) })}-${scale}`;
        try {
          latents = await LatentCache.build(dataset, { identity, encode: (x: Tensor4D) => tf.tidy(() => ae.encode(x).mul(scale) as Tensor4D) }, { dir: path.join(cacheDir, 'latents') });
        } catch (e) {
          ae.dispose();
          throw e;
        }
        if (vae) disposers.push(() => ae.dispose());
        else ae.dispose();
        info(`latents: ${latents.encoded} encoded, ${latents.reused} from the cache`);
        disposers.push(() => latents!.close());
      }
      // 3b. Caption states through Gemma-2 once, into the text-embedding cache.
      const encoder = promptEncoderFor(c, path.join(cacheDir, 'text'));
      disposers.push(() => {
        if (encoder.isLoaded) encoder.release();
      });
      const [nullRow] = encoder.encodeToHost([''], { negative: true });
      const nullCaption: NullCaption = { embeds: tf.tensor2d(nullRow.embeds, [nullRow.length, nullRow.dim]), mask: tf.tensor1d(nullRow.mask, 'int32') as Tensor1D };
      disposers.push(() => tf.dispose([nullCaption.embeds, nullCaption.mask]));
      const src = new DataBatchSource(dataset, {
        seed: c.seed,
        batchSize: microBatch,
        captionChoice: captionChoiceOf(c),
        latents,
        encodeCaptions: (captions) => stackEmbeddings(encoder.encodeToHost(captions)),
        onWarning: warn,
      });
      batches = new FlowBatches(src);
      objective = flowObjective((inputs) => dit.forward(inputs), { seed: c.seed, sampling: samplingOf(c), captionDropout: c.data.caption_dropout, nullCaption });
      saveModel = (dir) => saveSanaTransformer(dit, path.join(dir, 'transformer'));
      loadModel = (dir) => loadWeightsInto(dit, path.join(dir, 'transformer'));
      if (c.validation.every !== null) {
        const components = { transformer: dit, vae, promptEncoder: encoder, scheduler: flowDpmSolverForRun(c.flow, 'training config (flow)'), vaeScalingFactor: c.vae.scaling_factor ?? undefined };
        validate = flowValidation(c, components, run.samplesDir);
      }
    }

    // 4. Optimizer, schedule, loop (over the parameters the caller selects, when it does).
    let params = model.trainableParameters();
    if (opts.trainable) {
      const selection = opts.trainable(model);
      disposers.push(() => selection.dispose());
      params = selection.params;
      saveModel = (dir) => selection.save(dir);
      loadModel = (dir) => selection.load(dir);
      const validateTrained = validate;
      if (validateTrained && selection.evaluating) validate = (step) => selection.evaluating!(() => validateTrained(step));
    }
    const optimizer = createOptimizer(c.optimizer, params);
    const reporter = c.report_to === 'wandb' ? await createWandbReporter(c.wandb, c as unknown as Record<string, unknown>, emit) : null;
    const trainer = new Trainer({
      params,
      optimizer,
      schedule: lrScheduleFromConfig(c.lr_schedule, c.optimizer.lr, c.train.steps),
      batches,
      objective,
      totalSteps: c.train.steps,
      accumulation: c.train.gradient_accumulation_steps,
      gradClip: c.train.gradient_clip,
      emaDecay: c.train.ema_decay,
      logEvery: c.train.log_every,
      checkpointEvery: c.checkpoint.every,
      keepLast: c.checkpoint.keep_last,
      run,
      saveModel,
      loadModel,
      configDigest: trajectoryDigest(c),
      batchSize: microBatch,
      validation: validate && c.validation.every !== null ? { every: c.validation.every, run: validate } : undefined,
      onEvent: (e) => {
        emit(e);
        reporter?.onEvent(e);
      },
    });
    disposers.push(() => trainer.dispose());
    opts.onStopHandle?.(() => trainer.requestStop());
    if (opts.resume) trainer.resume(run.resolveResume(opts.resume).dir);
    const result = await trainer.run({ stopAt: opts.stopAt });
    await reporter?.finish();
    return { runDir: run.dir, step: result.step, checkpoint: result.checkpoint };
  } finally {
    for (const d of disposers.reverse()) d();
  }
}
