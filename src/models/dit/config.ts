/**
 * Configuration of `SanaTransformer2DModel`, field for field the `config.json` that diffusers writes
 * for it (diffusers `models/transformers/sana_transformer.py`, `SanaTransformer2DModel.__init__`),
 * with the same defaults. Parsing is strict: unknown fields and bad values are errors that name the
 * source, the field and what was expected; keys starting with `_` are metadata, as in diffusers.
 */

/** The `config.json` fields of a SANA transformer (snake_case, as diffusers writes them). */
export interface SanaTransformerConfig {
  in_channels: number;
  /** Output latent channels (diffusers accepts null for "same as in_channels"; resolved here). */
  out_channels: number;
  num_attention_heads: number;
  attention_head_dim: number;
  num_layers: number;
  num_cross_attention_heads: number;
  cross_attention_head_dim: number;
  /** Width of the text tokens the cross-attention reads: the caption projection's output, = inner dim. */
  cross_attention_dim: number;
  /** Width of the text encoder's hidden states (Gemma-2 2B: 2304). */
  caption_channels: number;
  /** GLUMBConv hidden width = int(mlp_ratio * inner dim). */
  mlp_ratio: number;
  dropout: number;
  /** Bias on the self-attention q/k/v projections. */
  attention_bias: boolean;
  /** Latent side the model was trained at; the base grid of the optional sin-cos position embedding. */
  sample_size: number;
  patch_size: number;
  /** Learnable affine on the LayerNorm before the feed-forward (norm2). */
  norm_elementwise_affine: boolean;
  norm_eps: number;
  /** null: no position embedding (NoPE, Sana 1.0); a number: 2D sin-cos embedding at this scale. */
  interpolation_scale: number | null;
  /** SANA-Sprint: embed a guidance scale next to the timestep. */
  guidance_embeds: boolean;
  /** Used by pipelines (guidance passed = guidance_scale * this); the model itself ignores it. */
  guidance_embeds_scale: number;
  /** null or 'rms_norm_across_heads' (RMSNorm over all heads' channels of q and k). */
  qk_norm: 'rms_norm_across_heads' | null;
  /** Used by pipelines (timestep passed = scheduler timestep * this); the model itself ignores it. */
  timestep_scale: number;
}

/** diffusers' defaults (its `__init__` signature): the Sana-1.6B shape. */
export const SANA_TRANSFORMER_DEFAULTS: Readonly<SanaTransformerConfig> = Object.freeze({
  in_channels: 32,
  out_channels: 32,
  num_attention_heads: 70,
  attention_head_dim: 32,
  num_layers: 20,
  num_cross_attention_heads: 20,
  cross_attention_head_dim: 112,
  cross_attention_dim: 2240,
  caption_channels: 2304,
  mlp_ratio: 2.5,
  dropout: 0.0,
  attention_bias: false,
  sample_size: 32,
  patch_size: 1,
  norm_elementwise_affine: false,
  norm_eps: 1e-6,
  interpolation_scale: null,
  guidance_embeds: false,
  guidance_embeds_scale: 0.1,
  qk_norm: null,
  timestep_scale: 1.0,
});

export const SANA_TRANSFORMER_CLASS = 'SanaTransformer2DModel';

const SUPPORTED_QK_NORMS = ['rms_norm_across_heads'] as const;

export class SanaConfigError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(`${source}: invalid SanaTransformer2DModel config: ${problems.join('; ')}`);
    this.name = 'SanaConfigError';
  }
}

type FieldKind = 'posint' | 'posnum' | 'num' | 'bool' | 'optposnum' | 'qknorm' | 'dropout' | 'optposint';

const FIELD_KINDS: Record<keyof SanaTransformerConfig, FieldKind> = {
  in_channels: 'posint',
  out_channels: 'optposint',
  num_attention_heads: 'posint',
  attention_head_dim: 'posint',
  num_layers: 'posint',
  num_cross_attention_heads: 'posint',
  cross_attention_head_dim: 'posint',
  cross_attention_dim: 'posint',
  caption_channels: 'posint',
  mlp_ratio: 'posnum',
  dropout: 'dropout',
  attention_bias: 'bool',
  sample_size: 'posint',
  patch_size: 'posint',
  norm_elementwise_affine: 'bool',
  norm_eps: 'posnum',
  interpolation_scale: 'optposnum',
  guidance_embeds: 'bool',
  guidance_embeds_scale: 'num',
  qk_norm: 'qknorm',
  timestep_scale: 'num',
};

const KNOWN_FIELDS = Object.keys(FIELD_KINDS) as Array<keyof SanaTransformerConfig>;

function describe(v: unknown): string {
  return v === undefined ? 'undefined' : JSON.stringify(v);
}

/** Checks one value against its kind; returns a problem or null. */
function checkField(name: string, kind: FieldKind, v: unknown): string | null {
  const isNum = typeof v === 'number' && Number.isFinite(v);
  switch (kind) {
    case 'posint':
      return Number.isInteger(v) && (v as number) > 0 ? null : `"${name}" must be a positive integer, got ${describe(v)}`;
    case 'optposint':
      return v === null || (Number.isInteger(v) && (v as number) > 0) ? null : `"${name}" must be a positive integer or null, got ${describe(v)}`;
    case 'posnum':
      return isNum && (v as number) > 0 ? null : `"${name}" must be a positive number, got ${describe(v)}`;
    case 'num':
      return isNum ? null : `"${name}" must be a number, got ${describe(v)}`;
    case 'optposnum':
      return v === null || (isNum && (v as number) > 0) ? null : `"${name}" must be a positive number or null, got ${describe(v)}`;
    case 'bool':
      return typeof v === 'boolean' ? null : `"${name}" must be true or false, got ${describe(v)}`;
    case 'qknorm':
      return v === null || (SUPPORTED_QK_NORMS as readonly unknown[]).includes(v)
        ? null
        : `"${name}" must be null or one of ${SUPPORTED_QK_NORMS.map((s) => `"${s}"`).join(', ')}, got ${describe(v)}`;
    case 'dropout':
      // Dropout would need seeded masks inside attention; SANA trains without it.
      return v === 0 ? null : `"${name}" must be 0 (dropout inside the transformer is not supported), got ${describe(v)}`;
  }
}

/** Relations between fields that the architecture needs (reported together with field errors). */
function crossFieldProblems(c: SanaTransformerConfig): string[] {
  const out: string[] = [];
  const inner = c.num_attention_heads * c.attention_head_dim;
  if (Number.isInteger(inner) && c.cross_attention_dim !== inner) {
    out.push(
      `"cross_attention_dim" (${c.cross_attention_dim}) must equal num_attention_heads * attention_head_dim (${inner}): ` +
        'the cross-attention reads the projected caption, which has the model width',
    );
  }
  if (c.interpolation_scale !== null && inner % 4 !== 0) {
    out.push(`the sin-cos position embedding (interpolation_scale set) needs a model width divisible by 4, got ${inner}`);
  }
  return out;
}

/**
 * Parses a diffusers `config.json` object into a full config: missing fields get diffusers' defaults,
 * unknown fields and bad values throw a `SanaConfigError` listing every problem.
 * @param sourceName the file (or description) named in errors.
 */
export function parseSanaTransformerConfig(json: unknown, sourceName = 'config'): SanaTransformerConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SanaConfigError(sourceName, [`expected a JSON object, got ${describe(json)}`]);
  }
  const obj = json as Record<string, unknown>;
  const problems: string[] = [];
  if ('_class_name' in obj && obj._class_name !== SANA_TRANSFORMER_CLASS) {
    problems.push(`"_class_name" is ${describe(obj._class_name)}, expected "${SANA_TRANSFORMER_CLASS}"`);
  }
  for (const key of Object.keys(obj)) {
    if (key.startsWith('_')) continue;
    if (!(KNOWN_FIELDS as string[]).includes(key)) problems.push(`unknown field "${key}" (known fields: ${KNOWN_FIELDS.join(', ')})`);
  }
  const merged: Record<string, unknown> = { ...SANA_TRANSFORMER_DEFAULTS };
  for (const key of KNOWN_FIELDS) {
    if (key in obj) merged[key] = obj[key];
    const problem = checkField(key, FIELD_KINDS[key], merged[key]);
    if (problem) problems.push(problem);
  }
  if (merged.out_channels === null) merged.out_channels = merged.in_channels;
  const config = merged as unknown as SanaTransformerConfig;
  if (problems.length === 0) problems.push(...crossFieldProblems(config));
  if (problems.length) throw new SanaConfigError(sourceName, problems);
  return config;
}

/** Validates an already-typed config (e.g. a preset with overrides); throws like the parser. */
export function validateSanaTransformerConfig(config: SanaTransformerConfig, sourceName = 'SanaTransformer2DModel config'): SanaTransformerConfig {
  return parseSanaTransformerConfig(config, sourceName);
}

/**
 * The config as diffusers writes it to `config.json` (keys sorted, class and version metadata first),
 * so `SanaTransformer2DModel.from_pretrained` accepts the folder.
 */
export function toDiffusersConfigJson(config: SanaTransformerConfig, diffusersVersion = '0.32.0'): Record<string, unknown> {
  const out: Record<string, unknown> = { _class_name: SANA_TRANSFORMER_CLASS, _diffusers_version: diffusersVersion };
  for (const key of [...KNOWN_FIELDS].sort()) out[key] = config[key];
  return out;
}

/** Model width (token channels): heads x head dim. */
export function innerDim(config: SanaTransformerConfig): number {
  return config.num_attention_heads * config.attention_head_dim;
}
