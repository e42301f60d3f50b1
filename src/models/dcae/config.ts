/**
 * Configuration of `AutoencoderDC`, mirroring the constructor arguments of diffusers'
 * `models/autoencoders/autoencoder_dc.py` (the keys of a `vae/config.json`), with the same defaults.
 * Parsing is strict: unknown keys, wrong types and inconsistent per-stage lists are errors that name
 * the source and the field. Keys starting with `_` (`_class_name`, `_diffusers_version`, ...) are
 * metadata and ignored.
 */

export type DCBlockType = 'ResBlock' | 'EfficientViTBlock';
export type DCNormType = 'rms_norm' | 'layer_norm' | 'batch_norm';
export type DownsampleBlockType = 'conv' | 'pixel_unshuffle';
export type UpsampleBlockType = 'interpolate' | 'pixel_shuffle';

/** A validated config: every per-stage field expanded to one entry per stage. */
export interface AutoencoderDCConfig {
  in_channels: number;
  latent_channels: number;
  attention_head_dim: number;
  encoder_block_types: DCBlockType[];
  decoder_block_types: DCBlockType[];
  encoder_block_out_channels: number[];
  decoder_block_out_channels: number[];
  encoder_layers_per_block: number[];
  decoder_layers_per_block: number[];
  encoder_qkv_multiscales: number[][];
  decoder_qkv_multiscales: number[][];
  upsample_block_type: UpsampleBlockType;
  downsample_block_type: DownsampleBlockType;
  decoder_norm_types: DCNormType[];
  decoder_act_fns: string[];
  encoder_out_shortcut: boolean;
  decoder_in_shortcut: boolean;
  decoder_conv_act_fn: string;
  scaling_factor: number;
}

/** diffusers' defaults for every key (the constructor's keyword defaults). */
const DEFAULTS: Record<string, unknown> = {
  in_channels: 3,
  latent_channels: 32,
  attention_head_dim: 32,
  encoder_block_types: 'ResBlock',
  decoder_block_types: 'ResBlock',
  encoder_block_out_channels: [128, 256, 512, 512, 1024, 1024],
  decoder_block_out_channels: [128, 256, 512, 512, 1024, 1024],
  encoder_layers_per_block: [2, 2, 2, 3, 3, 3],
  decoder_layers_per_block: [3, 3, 3, 3, 3, 3],
  encoder_qkv_multiscales: [[], [], [], [5], [5], [5]],
  decoder_qkv_multiscales: [[], [], [], [5], [5], [5]],
  upsample_block_type: 'pixel_shuffle',
  downsample_block_type: 'pixel_unshuffle',
  decoder_norm_types: 'rms_norm',
  decoder_act_fns: 'silu',
  encoder_out_shortcut: true,
  decoder_in_shortcut: true,
  decoder_conv_act_fn: 'relu',
  scaling_factor: 1.0,
};

const BLOCK_TYPES: readonly DCBlockType[] = ['ResBlock', 'EfficientViTBlock'];
const NORM_TYPES: readonly DCNormType[] = ['rms_norm', 'layer_norm', 'batch_norm'];
/** Activations diffusers' `get_activation` knows. */
const ACTIVATIONS = ['silu', 'swish', 'relu', 'gelu', 'mish'];

export class ConfigError extends Error {
  constructor(source: string, field: string, problem: string) {
    super(`${source}: ${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/**
 * Validates a raw `config.json` object (as diffusers writes it) into an `AutoencoderDCConfig`.
 * `source` names the file in error messages.
 */
export function parseAutoencoderDCConfig(raw: Record<string, unknown>, source = 'AutoencoderDC config'): AutoencoderDCConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(source, '(root)', 'expected a JSON object');
  const unknown = Object.keys(raw).filter((k) => !k.startsWith('_') && !(k in DEFAULTS));
  if (unknown.length) throw new ConfigError(source, unknown.join(', '), `unknown key(s); expected some of ${Object.keys(DEFAULTS).join(', ')}`);
  if (raw._class_name !== undefined && raw._class_name !== 'AutoencoderDC') {
    throw new ConfigError(source, '_class_name', `expected "AutoencoderDC", got ${JSON.stringify(raw._class_name)}`);
  }
  const get = (k: string) => (raw[k] === undefined || raw[k] === null ? DEFAULTS[k] : raw[k]);
  const fail = (k: string, what: string): never => {
    throw new ConfigError(source, k, `expected ${what}, got ${JSON.stringify(raw[k])}`);
  };
  const posInt = (k: string): number => {
    const v = get(k);
    return Number.isInteger(v) && (v as number) > 0 ? (v as number) : fail(k, 'a positive integer');
  };
  const bool = (k: string): boolean => {
    const v = get(k);
    return typeof v === 'boolean' ? v : fail(k, 'true or false');
  };
  const intList = (k: string, min: number): number[] => {
    const v = get(k);
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x >= min)) {
      return fail(k, `a non-empty list of integers >= ${min}`);
    }
    return v as number[];
  };

  const encoderChannels = intList('encoder_block_out_channels', 1);
  const stages = encoderChannels.length;
  const decoderChannels = intList('decoder_block_out_channels', 1);
  // The compression ratio is 2^(stages-1) on both sides only when they have the same number of stages.
  if (decoderChannels.length !== stages) fail('decoder_block_out_channels', `${stages} entries (as encoder_block_out_channels)`);

  const perStage = <T>(k: string, value: unknown, ok: (x: unknown) => x is T, what: string): T[] => {
    if (typeof value === 'string' && ok(value)) return new Array<T>(stages).fill(value);
    if (Array.isArray(value) && value.length === stages && value.every(ok)) return value as T[];
    return fail(k, `${what}, or a list of ${stages} of them`);
  };
  const isBlock = (x: unknown): x is DCBlockType => typeof x === 'string' && (BLOCK_TYPES as readonly string[]).includes(x);
  const isNorm = (x: unknown): x is DCNormType => typeof x === 'string' && (NORM_TYPES as readonly string[]).includes(x);
  const isAct = (x: unknown): x is string => typeof x === 'string' && ACTIVATIONS.includes(x);
  const sameLength = (k: string, xs: unknown[]) => {
    if (xs.length !== stages) fail(k, `${stages} entries (one per stage)`);
  };

  const encoderLayers = intList('encoder_layers_per_block', 0);
  const decoderLayers = intList('decoder_layers_per_block', 0);
  sameLength('encoder_layers_per_block', encoderLayers);
  sameLength('decoder_layers_per_block', decoderLayers);
  const scales = (k: string): number[][] => {
    const v = get(k);
    const ok = Array.isArray(v) && v.length === stages && v.every((s) => Array.isArray(s) && s.every((x) => Number.isInteger(x) && x > 0 && x % 2 === 1));
    return ok ? (v as number[][]).map((s) => [...s]) : fail(k, `a list of ${stages} lists of odd kernel sizes (e.g. [[], [5]])`);
  };

  const down = String(get('downsample_block_type'));
  // diffusers tests `== "pixel_unshuffle"` and treats anything else as a strided convolution; the hub
  // configs spell that "conv" or "Conv".
  const downsample: DownsampleBlockType = down === 'pixel_unshuffle' ? 'pixel_unshuffle' : down.toLowerCase() === 'conv' ? 'conv' : fail('downsample_block_type', '"conv" or "pixel_unshuffle"');
  const up = String(get('upsample_block_type'));
  const upsample: UpsampleBlockType = up === 'interpolate' ? 'interpolate' : up === 'pixel_shuffle' ? 'pixel_shuffle' : fail('upsample_block_type', '"interpolate" or "pixel_shuffle"');

  const convAct = get('decoder_conv_act_fn');
  const scaling = get('scaling_factor');
  const config: AutoencoderDCConfig = {
    in_channels: posInt('in_channels'),
    latent_channels: posInt('latent_channels'),
    attention_head_dim: posInt('attention_head_dim'),
    encoder_block_types: perStage('encoder_block_types', get('encoder_block_types'), isBlock, `one of ${BLOCK_TYPES.join(', ')}`),
    decoder_block_types: perStage('decoder_block_types', get('decoder_block_types'), isBlock, `one of ${BLOCK_TYPES.join(', ')}`),
    encoder_block_out_channels: encoderChannels,
    decoder_block_out_channels: decoderChannels,
    encoder_layers_per_block: encoderLayers,
    decoder_layers_per_block: decoderLayers,
    encoder_qkv_multiscales: scales('encoder_qkv_multiscales'),
    decoder_qkv_multiscales: scales('decoder_qkv_multiscales'),
    upsample_block_type: upsample,
    downsample_block_type: downsample,
    decoder_norm_types: perStage('decoder_norm_types', get('decoder_norm_types'), isNorm, `one of ${NORM_TYPES.join(', ')}`),
    decoder_act_fns: perStage('decoder_act_fns', get('decoder_act_fns'), isAct, `one of ${ACTIVATIONS.join(', ')}`),
    encoder_out_shortcut: bool('encoder_out_shortcut'),
    decoder_in_shortcut: bool('decoder_in_shortcut'),
    decoder_conv_act_fn: isAct(convAct) ? convAct : fail('decoder_conv_act_fn', `one of ${ACTIVATIONS.join(', ')}`),
    scaling_factor: typeof scaling === 'number' && Number.isFinite(scaling) && scaling > 0 ? scaling : fail('scaling_factor', 'a positive number'),
  };
  checkChannelArithmetic(config, source);
  return config;
}

/** The integer divisions the reference performs silently (shortcut group sizes, repeats, heads). */
function checkChannelArithmetic(c: AutoencoderDCConfig, source: string): void {
  const err = (field: string, problem: string): never => {
    throw new ConfigError(source, field, problem);
  };
  const last = (xs: number[]) => xs[xs.length - 1];
  if (c.encoder_out_shortcut && last(c.encoder_block_out_channels) % c.latent_channels) {
    err('encoder_out_shortcut', `last encoder width ${last(c.encoder_block_out_channels)} must be a multiple of latent_channels ${c.latent_channels}`);
  }
  if (c.decoder_in_shortcut && last(c.decoder_block_out_channels) % c.latent_channels) {
    err('decoder_in_shortcut', `last decoder width ${last(c.decoder_block_out_channels)} must be a multiple of latent_channels ${c.latent_channels}`);
  }
  const n = c.encoder_block_out_channels.length;
  for (let i = 0; i < n; i++) {
    const ce = c.encoder_block_out_channels[i];
    const cd = c.decoder_block_out_channels[i];
    if (i < n - 1 && c.encoder_layers_per_block[i] > 0) {
      const next = c.encoder_block_out_channels[i + 1];
      // The down-sampling shortcut averages groups of 4*in/out space-to-channel values.
      if ((4 * ce) % next) err('encoder_block_out_channels', `stage ${i}: 4*${ce} is not a multiple of the next width ${next} (down-sampling shortcut)`);
      if (c.downsample_block_type === 'pixel_unshuffle' && next % 4) err('encoder_block_out_channels', `stage ${i + 1}: width ${next} must be a multiple of 4 for pixel_unshuffle down-sampling`);
    }
    if (i < n - 1 && c.decoder_layers_per_block[i] > 0) {
      const prev = c.decoder_block_out_channels[i + 1];
      // The up-sampling shortcut repeats each channel 4*out/in times before channel-to-space.
      if ((4 * cd) % prev) err('decoder_block_out_channels', `stage ${i}: 4*${cd} is not a multiple of the previous width ${prev} (up-sampling shortcut)`);
    }
    if (c.encoder_block_types[i] === 'EfficientViTBlock' && c.encoder_layers_per_block[i] > 0 && ce < c.attention_head_dim) {
      err('attention_head_dim', `${c.attention_head_dim} is wider than encoder stage ${i} (${ce} channels): no attention head fits`);
    }
    if (c.decoder_block_types[i] === 'EfficientViTBlock' && c.decoder_layers_per_block[i] > 0 && cd < c.attention_head_dim) {
      err('attention_head_dim', `${c.attention_head_dim} is wider than decoder stage ${i} (${cd} channels): no attention head fits`);
    }
  }
  if (c.encoder_layers_per_block[0] === 0) {
    if (n < 2) err('encoder_layers_per_block', 'a first stage without layers needs a second stage');
    if (c.downsample_block_type === 'pixel_unshuffle' && c.encoder_block_out_channels[1] % 4) err('encoder_block_out_channels', 'stage 1 width must be a multiple of 4 (input pixel_unshuffle)');
  }
  if (c.decoder_layers_per_block[0] === 0 && n < 2) err('decoder_layers_per_block', 'a first stage without layers needs a second stage');
}

/**
 * `mit-han-lab/dc-ae-f32c32-sana-1.0-diffusers`: the autoencoder of every SANA 1.0/1.5 checkpoint. It
 * differs from diffusers' defaults in its block types (EfficientViT in the last three stages), its
 * resampling (strided conv down, interpolation up) and its latent scale.
 */
export const DC_AE_F32C32_SANA_1_0: Readonly<Record<string, unknown>> = Object.freeze({
  ...DEFAULTS,
  encoder_block_types: ['ResBlock', 'ResBlock', 'ResBlock', 'EfficientViTBlock', 'EfficientViTBlock', 'EfficientViTBlock'],
  decoder_block_types: ['ResBlock', 'ResBlock', 'ResBlock', 'EfficientViTBlock', 'EfficientViTBlock', 'EfficientViTBlock'],
  upsample_block_type: 'interpolate',
  downsample_block_type: 'conv',
  scaling_factor: 0.41407,
});

/**
 * Parameters of the f32c32-sana-1.0 preset (encoder 153,027,104 + decoder 159,223,171). Checked against
 * the reference: diffusers' `AutoencoderDC(**config)` built on the meta device with this config counts
 * the same 312,250,275 (sum of `numel()` over `parameters()`; scripts/fixtures/make_dcae_fixtures.py
 * prints it).
 */
export const DC_AE_F32C32_SANA_1_0_NUM_PARAMETERS = 312_250_275;

/** Named presets: a preset is a full raw config, validated like a file. */
export const AUTOENCODER_DC_PRESETS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = Object.freeze({
  'f32c32-sana-1.0': DC_AE_F32C32_SANA_1_0,
});

/** The validated config of a named preset, optionally with some fields overridden. */
export function autoencoderDCPreset(name: string, overrides: Record<string, unknown> = {}): AutoencoderDCConfig {
  const preset = AUTOENCODER_DC_PRESETS[name];
  if (!preset) throw new ConfigError('AutoencoderDC presets', name, `unknown preset; expected one of ${Object.keys(AUTOENCODER_DC_PRESETS).join(', ')}`);
  return parseAutoencoderDCConfig({ ...preset, ...overrides }, `preset ${name}`);
}
