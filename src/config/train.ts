/**
 * The training run config (`sana train --config run.yaml`). Keys are snake_case as in SANA's YAML
 * configs (NVlabs/Sana `configs/sana_config/*.yaml`: `optimizer`, `lr_schedule_args`, `gradient_clip`,
 * `weighting_scheme`, `logit_mean`, `flow_shift`, ...) and diffusers' `config.json` for model fields.
 * Model sizes are named presets plus field overrides (`model.preset` + `model.config`), never copies.
 *
 * Defaults follow SANA's 1024px recipe where one applies (CAMEWrapper lr 1e-4, betas (0.9, 0.999,
 * 0.9999), eps (1e-30, 1e-16), gradient_clip 0.1, logit-normal(0, 1), flow_shift 3.0, caption
 * dropout 0.1).
 */
import { BACKEND_NAMES } from '../backend';
import {
  Infer, any, array, boolean, integer, nullable, number, object, oneOf, record, refine, string, union, withDefault, required,
} from './schema';
import { loadConfig } from './load';

const probability = () => number({ min: 0, max: 1 });
const beta = () => number({ min: 0, max: 1 });

const modelSchema = object({
  preset: withDefault(nullable(string({ nonEmpty: true })), null, 'named model size (e.g. sana-0.6b, or a small preset for experiments)'),
  config: withDefault(record(any()), () => ({}), 'fields of the model config.json that override the preset'),
  pretrained: withDefault(nullable(string({ nonEmpty: true })), null, 'diffusers folder (transformer/ or vae/) to start from'),
  gradient_checkpointing: withDefault(boolean(), false),
  init_seed: withDefault(nullable(integer({ min: 0 })), null, 'seed of the initial weights (default: the run seed)'),
});

/** LoRA fine-tuning (`sana finetune`): adapters on the pretrained transformer; only they train. */
const loraSchema = object({
  rank: withDefault(integer({ min: 1 }), 4, 'r: rank of each adapter'),
  alpha: withDefault(nullable(number({ gt: 0 })), null, 'lora_alpha: the update is scaled by alpha / rank (default: alpha = rank)'),
  dropout: withDefault(probability(), 0, 'lora_dropout on the adapter input while training'),
  init: withDefault(oneOf(['gaussian', 'kaiming'] as const), 'gaussian', "init of lora_A (lora_B starts at zero): 'gaussian' N(0, 1/r) as diffusers' SANA LoRA script, 'kaiming' = peft's default"),
  target_modules: withDefault(array(string({ nonEmpty: true }), { minLength: 1 }), () => ['to_q', 'to_k', 'to_v', 'to_out.0'], 'peft target_modules: module-name suffixes (attn1 and attn2 both match) or regular expressions'),
  convs: withDefault(boolean(), false, "also adapt the GLUMBConv 1x1 convolutions (ff.conv_inverted, ff.conv_point)"),
  caption_projection: withDefault(boolean(), false, 'also adapt caption_projection.linear_1 / linear_2'),
  blocks: withDefault(nullable(array(integer({ min: 0 }), { length: 2 })), null, '[first, last] transformer block to adapt (inclusive); null = all'),
  init_seed: withDefault(nullable(integer({ min: 0 })), null, 'seed of the adapter init (default: the run seed)'),
});

const vaeSchema = object({
  pretrained: withDefault(nullable(string({ nonEmpty: true })), null, 'diffusers vae/ folder; null = train in pixel space'),
  scaling_factor: withDefault(nullable(number({ gt: 0 })), null, 'latent scale (default: the VAE config value)'),
});

const textEncoderSchema = object({
  pretrained: withDefault(nullable(string({ nonEmpty: true })), null, 'folder with a Gemma-2 text_encoder/'),
  config: withDefault(nullable(record(any())), null, 'without pretrained: Gemma-2 config.json fields of a randomly initialised (seeded) frozen encoder'),
  init_seed: withDefault(nullable(integer({ min: 0 })), null, 'seed of the random text encoder weights (default: the run seed)'),
  tokenizer: withDefault(nullable(string({ nonEmpty: true })), null, 'folder or tokenizer.json (default: the bundled Gemma tokenizer)'),
  max_length: withDefault(integer({ min: 1 }), 300),
  complex_human_instruction: withDefault(boolean(), true),
});

const captionSchema = object({
  mode: withDefault(oneOf(['clipscore', 'softmax', 'proportion'] as const), 'clipscore', "SANA's CLIP-score rule, its softmax variant, or fixed proportions per caption type"),
  threshold: withDefault(number(), 25.0, 'captions scoring below are used only when none passes (SANA clip_thr)'),
  temperature: withDefault(number({ gt: 0 }), 0.1, 'tau of the s^(1/tau) (or softmax(s/tau)) weights (SANA clip_thr_temperature)'),
  proportions: withDefault(nullable(record(number({ min: 0 }))), null, "mode 'proportion': weight per caption type, e.g. {prompt: 0.7, short: 0.3}"),
});

const dataSchema = object({
  path: required(string({ nonEmpty: true }), 'dataset folder (manifest.jsonl + images, or image.png + image.txt pairs)'),
  resolution: withDefault(integer({ min: 8 }), 512),
  channels: withDefault(integer({ min: 1, max: 3 }), 3, 'image channels the model sees: 3 (RGB) or 1 (grey, e.g. Fashion-MNIST)'),
  batch_size: withDefault(integer({ min: 1 }), 1),
  aspect_ratio_buckets: withDefault(boolean(), false),
  caption: withDefault(captionSchema, () => captionSchema.parse({}, { path: '', issues: [] })!),
  caption_dropout: withDefault(probability(), 0.1, 'probability of training a sample on the empty-prompt embedding'),
  cache_dir: withDefault(nullable(string({ nonEmpty: true })), null, 'where latents and text embeddings are cached (default: <output_dir>/cache)'),
  limit: withDefault(nullable(integer({ min: 1 })), null, 'use only the first N images'),
});

const optimizerSchema = object({
  type: withDefault(oneOf(['came', 'adamw'] as const), 'came'),
  lr: withDefault(number({ gt: 0 }), 1e-4),
  betas: withDefault(nullable(array(beta(), { minLength: 2 })), null, 'adamw: [b1, b2] (0.9, 0.999); came: [b1, b2, b3] (0.9, 0.999, 0.9999)'),
  eps: withDefault(nullable(union(number({ min: 0 }), array(number({ min: 0 }), { minLength: 1 }))), null, 'adamw: a number (1e-8); came: [eps1, eps2] (1e-30, 1e-16)'),
  weight_decay: withDefault(number({ min: 0 }), 0),
  came_factoring: withDefault(oneOf(['sana', 'official'] as const), 'sana', "'sana' = SANA's CAMEWrapper, 'official' = yangluo7/CAME"),
  clip_threshold: withDefault(number({ gt: 0 }), 1.0, "CAME's RMS clipping of the update"),
});

const lrScheduleSchema = object({
  type: withDefault(oneOf(['constant', 'cosine'] as const), 'constant'),
  warmup_steps: withDefault(integer({ min: 0 }), 0),
  min_lr: withDefault(number({ min: 0 }), 0, "floor of the cosine decay"),
});

const trainSchema = object({
  steps: required(integer({ min: 1 }), 'optimizer steps in the whole run'),
  gradient_accumulation_steps: withDefault(integer({ min: 1 }), 1),
  gradient_clip: withDefault(nullable(number({ gt: 0 })), 0.1, 'max global gradient norm; null disables clipping'),
  ema_decay: withDefault(nullable(number({ min: 0, max: 1 })), null, 'keep an exponential moving average of the weights'),
  log_every: withDefault(integer({ min: 1 }), 10),
  reconstruction_loss: withDefault(oneOf(['mse', 'l1'] as const), 'mse', 'autoencoder task only'),
  estimate_scaling_factor: withDefault(boolean(), false, 'autoencoder task: save scaling_factor = 1 / std of the latents of a fixed image sample with every checkpoint'),
});

const flowSchema = object({
  weighting_scheme: withDefault(oneOf(['logit_normal', 'uniform', 'mode'] as const), 'logit_normal'),
  logit_mean: withDefault(number(), 0),
  logit_std: withDefault(number({ gt: 0 }), 1),
  mode_scale: withDefault(number(), 1.29),
  flow_shift: withDefault(number({ gt: 0 }), 3.0),
  num_train_timesteps: withDefault(integer({ min: 1 }), 1000),
  discrete_timesteps: withDefault(boolean(), false, 'diffusers-script style: pick from the 1000-entry shifted table'),
});

const checkpointSchema = object({
  every: withDefault(nullable(integer({ min: 1 })), 500, 'save every N steps (and always at the end); null = only at the end'),
  keep_last: withDefault(integer({ min: 1 }), 3),
});

const validationSchema = object({
  every: withDefault(nullable(integer({ min: 1 })), null, 'sample a PNG grid every N steps; null = never'),
  prompts: withDefault(array(string()), () => []),
  negative_prompt: withDefault(string(), ''),
  seed: withDefault(integer({ min: 0 }), 0),
  steps: withDefault(integer({ min: 1 }), 20),
  guidance_scale: withDefault(number({ min: 0 }), 4.5),
  sampler: withDefault(oneOf(['dpm', 'euler'] as const), 'dpm'),
  images_per_prompt: withDefault(integer({ min: 1 }), 1),
  images: withDefault(integer({ min: 1 }), 8, "autoencoder task: reconstruct this many training images (originals above, reconstructions below)"),
});

const wandbSchema = object({
  project: withDefault(string({ nonEmpty: true }), 'sana-tfjs'),
  entity: withDefault(nullable(string({ nonEmpty: true })), null),
  name: withDefault(nullable(string({ nonEmpty: true })), null),
});

const defaults = <T>(s: { parse: (v: unknown, c: { path: string; issues: never[] }) => T | undefined }) => () => s.parse({}, { path: '', issues: [] })!;

const trainConfigShape = object({
  task: withDefault(oneOf(['flow', 'autoencoder'] as const), 'flow', "'flow': a SANA DiT with rectified flow; 'autoencoder': an AutoencoderDC with a reconstruction loss"),
  output_dir: required(string({ nonEmpty: true }), 'run folder (config, log.jsonl, checkpoints/, samples/)'),
  seed: withDefault(integer({ min: 0 }), 0),
  backend: withDefault(nullable(oneOf(BACKEND_NAMES)), null),
  model: withDefault(modelSchema, defaults(modelSchema)),
  vae: withDefault(vaeSchema, defaults(vaeSchema)),
  lora: withDefault(nullable(loraSchema), null, 'LoRA settings for `sana finetune` (null = full training)'),
  text_encoder: withDefault(textEncoderSchema, defaults(textEncoderSchema)),
  data: required(dataSchema),
  optimizer: withDefault(optimizerSchema, defaults(optimizerSchema)),
  lr_schedule: withDefault(lrScheduleSchema, defaults(lrScheduleSchema)),
  train: required(trainSchema),
  flow: withDefault(flowSchema, defaults(flowSchema)),
  checkpoint: withDefault(checkpointSchema, defaults(checkpointSchema)),
  validation: withDefault(validationSchema, defaults(validationSchema)),
  report_to: withDefault(oneOf(['none', 'wandb'] as const), 'none'),
  wandb: withDefault(wandbSchema, defaults(wandbSchema)),
});

/** The whole run config, with the checks that involve several fields. */
export const trainConfigSchema = refine(trainConfigShape, (c, issue) => {
  const o = c.optimizer;
  const nBetas = o.type === 'came' ? 3 : 2;
  if (o.betas && o.betas.length !== nBetas) issue('optimizer.betas', `${nBetas} values for ${o.type}`, o.betas);
  if (o.eps !== null) {
    if (o.type === 'came' && (!Array.isArray(o.eps) || o.eps.length !== 2)) issue('optimizer.eps', 'a list [eps1, eps2] for came', o.eps);
    if (o.type === 'adamw' && Array.isArray(o.eps)) issue('optimizer.eps', 'a single number for adamw', o.eps);
  }
  if (c.data.caption.mode === 'proportion' && !c.data.caption.proportions) issue('data.caption.proportions', "a mapping of caption type to weight when mode is 'proportion'", null);
  if (c.task === 'flow' && c.validation.every !== null && c.validation.prompts.length === 0) issue('validation.prompts', 'at least one prompt when validation.every is set', c.validation.prompts);
  if (c.lora && c.task !== 'flow') issue('lora', "no lora section: LoRA fine-tuning needs task 'flow'", c.lora);
  if (c.lora?.blocks && c.lora.blocks[0] > c.lora.blocks[1]) issue('lora.blocks', '[first, last] with first <= last', c.lora.blocks);
  if (c.data.channels === 2) issue('data.channels', '1 or 3', c.data.channels);
  if (c.text_encoder.pretrained && c.text_encoder.config) issue('text_encoder.config', 'null when text_encoder.pretrained is set (the folder has its own config.json)', c.text_encoder.config);
  if (c.lr_schedule.type === 'cosine' && c.lr_schedule.min_lr > c.optimizer.lr) issue('lr_schedule.min_lr', `at most optimizer.lr (${c.optimizer.lr})`, c.lr_schedule.min_lr);
});

export type TrainConfig = Infer<typeof trainConfigShape>;
export type OptimizerConfig = TrainConfig['optimizer'];
export type LrScheduleConfig = TrainConfig['lr_schedule'];
export type FlowConfig = TrainConfig['flow'];

/** Reads, overrides (`--set a.b=c`) and validates a training config file. */
export function loadTrainConfig(file: string, sets: string[] = []): TrainConfig {
  return loadConfig(trainConfigSchema, file, sets).config;
}
