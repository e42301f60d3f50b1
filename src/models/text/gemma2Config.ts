/**
 * Gemma-2 configuration, mirroring transformers' `models/gemma2/configuration_gemma2.py` (`Gemma2Config`):
 * same field names and defaults. Accepts what both transformers 4.x and 5.x write:
 * - RoPE base as a top-level `rope_theta` (4.x) or under `rope_parameters: {rope_theta, rope_type}` (5.x);
 * - `layer_types` (newer) or nothing, in which case layers alternate sliding / full starting with sliding
 *   (what older transformers hard-coded as `is_sliding = not layer_idx % 2`);
 * - `dtype` (5.x) or `torch_dtype` (4.x), both irrelevant here since compute is float32.
 */

export type Gemma2LayerType = 'sliding_attention' | 'full_attention';

export interface Gemma2Config {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  /** Activation of the gated MLP (`gelu_pytorch_tanh` for every released Gemma-2). */
  hidden_activation: string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  /** RoPE base frequency. */
  rope_theta: number;
  /**
   * RoPE frequency scaling (transformers' `rope_parameters.rope_type` other than "default"): "linear"
   * divides every frequency by `factor`; "dynamic" (NTK) raises the base once a sequence is longer than
   * `max_position_embeddings`. Null or absent: the default RoPE.
   */
  rope_scaling?: Gemma2RopeScaling | null;
  attention_bias: boolean;
  /** Attention logits become tanh(s / cap) * cap; null disables. */
  attn_logit_softcapping: number | null;
  /** Only used by the LM head, which this project does not build; kept for round trips. */
  final_logit_softcapping: number | null;
  /** Attention scores are scaled by query_pre_attn_scalar^-0.5 (not head_dim^-0.5). */
  query_pre_attn_scalar: number;
  /** Window of the sliding layers: key kv is visible from query q iff q - window < kv <= q. Null: no window. */
  sliding_window: number | null;
  layer_types: Gemma2LayerType[];
  pad_token_id: number | null;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
}

export interface Gemma2RopeScaling {
  rope_type: 'linear' | 'dynamic';
  factor: number;
}

export class Gemma2ConfigError extends Error {
  constructor(source: string, field: string, problem: string) {
    super(`${source}: field "${field}": ${problem}`);
    this.name = 'Gemma2ConfigError';
  }
}

/** Fields a saved config carries that do not change the encoder's output. */
const BOOKKEEPING_FIELDS = new Set([
  'architectures', 'model_type', 'transformers_version', 'dtype', 'torch_dtype', 'use_cache', 'cache_implementation',
  'initializer_range', 'attention_dropout', 'tie_word_embeddings', 'hidden_act', 'return_dict', 'output_hidden_states',
  'output_attentions', 'torchscript', 'use_return_dict', 'is_encoder_decoder', 'is_decoder', 'add_cross_attention',
  'tie_encoder_decoder', 'chunk_size_feed_forward', 'pruned_heads', 'problem_type', 'id2label', 'label2id',
  'tokenizer_class', 'prefix', 'sep_token_id', 'decoder_start_token_id', 'task_specific_params', 'finetuning_task',
  'quantization_config',
]);

/** The defaults of transformers' Gemma2Config (the 2B-class model) for fields a config may omit. */
const DEFAULTS = {
  vocab_size: 256000,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  attention_bias: false,
  attn_logit_softcapping: 50,
  final_logit_softcapping: 30,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  pad_token_id: 0,
  bos_token_id: 2,
  eos_token_id: 1,
};

export interface ParseGemma2ConfigOptions {
  /** Accept fields this parser does not know (they are ignored). Default false: an unknown field is an error. */
  allowUnknownFields?: boolean;
}

/**
 * Validates a parsed `config.json` into a `Gemma2Config`. Errors name `source`, the field and what
 * was expected. Unknown fields are rejected unless `allowUnknownFields` (they could change the math).
 */
export function parseGemma2Config(raw: unknown, source = 'Gemma2 config', opts: ParseGemma2ConfigOptions = {}): Gemma2Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Gemma2ConfigError(source, '(root)', 'expected a JSON object');
  const j = raw as Record<string, unknown>;
  const seen = new Set<string>();
  const err = (field: string, problem: string) => new Gemma2ConfigError(source, field, problem);

  const int = (field: keyof typeof DEFAULTS, min = 1): number => {
    seen.add(field);
    const v = j[field] ?? DEFAULTS[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw err(field, `expected an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  const positive = (field: keyof typeof DEFAULTS): number => {
    seen.add(field);
    const v = j[field] ?? DEFAULTS[field];
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw err(field, `expected a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const optionalPositive = (field: keyof typeof DEFAULTS): number | null => {
    seen.add(field);
    const v = field in j ? j[field] : DEFAULTS[field];
    if (v === null) return null;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw err(field, `expected a positive number or null, got ${JSON.stringify(v)}`);
    return v;
  };
  const optionalTokenId = (field: 'pad_token_id' | 'bos_token_id'): number | null => {
    seen.add(field);
    const v = field in j ? j[field] : DEFAULTS[field];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw err(field, `expected a token id (integer >= 0) or null, got ${JSON.stringify(v)}`);
    return v;
  };

  const vocab_size = int('vocab_size');
  const hidden_size = int('hidden_size');
  const intermediate_size = int('intermediate_size');
  const num_hidden_layers = int('num_hidden_layers');
  const num_attention_heads = int('num_attention_heads');
  const num_key_value_heads = int('num_key_value_heads');
  if (num_attention_heads % num_key_value_heads !== 0) {
    throw err('num_key_value_heads', `${num_key_value_heads} must divide num_attention_heads (${num_attention_heads})`);
  }
  // transformers derives head_dim from the hidden size when the config leaves it out.
  // Like transformers, an absent head_dim means 256 (not hidden_size / num_attention_heads).
  const head_dim = int('head_dim');
  if (head_dim % 2 !== 0) throw err('head_dim', `rotary embeddings need an even head_dim, got ${head_dim}`);

  seen.add('hidden_activation');
  const hidden_activation = j.hidden_activation ?? j.hidden_act ?? DEFAULTS.hidden_activation;
  if (typeof hidden_activation !== 'string') throw err('hidden_activation', `expected an activation name, got ${JSON.stringify(hidden_activation)}`);

  const max_position_embeddings = int('max_position_embeddings');
  const rms_norm_eps = positive('rms_norm_eps');
  const { theta: rope_theta, scaling: rope_scaling } = parseRope(j, source, seen);

  seen.add('attention_bias');
  const attention_bias = j.attention_bias ?? DEFAULTS.attention_bias;
  if (typeof attention_bias !== 'boolean') throw err('attention_bias', `expected true or false, got ${JSON.stringify(attention_bias)}`);

  const attn_logit_softcapping = optionalPositive('attn_logit_softcapping');
  const final_logit_softcapping = optionalPositive('final_logit_softcapping');
  const query_pre_attn_scalar = positive('query_pre_attn_scalar');
  const sliding_window = optionalPositive('sliding_window');
  if (sliding_window !== null && !Number.isInteger(sliding_window)) throw err('sliding_window', `expected an integer, got ${sliding_window}`);

  seen.add('layer_types');
  let layer_types: Gemma2LayerType[];
  if (j.layer_types === undefined || j.layer_types === null) {
    layer_types = Array.from({ length: num_hidden_layers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention'));
  } else {
    const lt = j.layer_types;
    if (!Array.isArray(lt) || lt.length !== num_hidden_layers) {
      throw err('layer_types', `expected a list of ${num_hidden_layers} entries (num_hidden_layers), got ${JSON.stringify(lt)}`);
    }
    lt.forEach((t, i) => {
      if (t !== 'sliding_attention' && t !== 'full_attention') throw err(`layer_types[${i}]`, `expected "sliding_attention" or "full_attention", got ${JSON.stringify(t)}`);
    });
    layer_types = lt as Gemma2LayerType[];
  }

  seen.add('use_bidirectional_attention');
  const bidi = j.use_bidirectional_attention ?? false;
  if (bidi !== false) {
    // transformers' eager Gemma-2 still builds causal masks with this flag; only its other attention
    // backends drop causality. With no single reference behaviour to follow, it is refused.
    throw err('use_bidirectional_attention', `only false or null is supported (Gemma-2 text encoders are causal), got ${JSON.stringify(bidi)}`);
  }

  const pad_token_id = optionalTokenId('pad_token_id');
  const bos_token_id = optionalTokenId('bos_token_id');
  seen.add('eos_token_id');
  const eos = 'eos_token_id' in j ? j.eos_token_id : DEFAULTS.eos_token_id;
  const isId = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  if (!(eos === null || isId(eos) || (Array.isArray(eos) && eos.every(isId)))) {
    throw err('eos_token_id', `expected a token id, a list of ids or null, got ${JSON.stringify(eos)}`);
  }

  if (!opts.allowUnknownFields) {
    const unknown = Object.keys(j).filter((k) => !seen.has(k) && !BOOKKEEPING_FIELDS.has(k) && !k.startsWith('_'));
    if (unknown.length) {
      throw err(unknown[0], `not a Gemma-2 config field${unknown.length > 1 ? ` (unknown fields: ${unknown.join(', ')})` : ''}; it may change the model, so it is not ignored silently (pass allowUnknownFields to ignore it)`);
    }
  }

  return {
    vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim,
    hidden_activation, max_position_embeddings, rms_norm_eps, rope_theta, rope_scaling, attention_bias, attn_logit_softcapping,
    final_logit_softcapping, query_pre_attn_scalar, sliding_window, layer_types,
    pad_token_id, bos_token_id, eos_token_id: eos as number | number[] | null,
  };
}

/**
 * RoPE settings: 5.x `rope_parameters`, 4.x `rope_theta` (+ `rope_scaling`). The default RoPE and the
 * two scalings that only change the frequencies ("linear", "dynamic") are supported; the others
 * (yarn, llama3, longrope, ...) are refused by name rather than computed differently.
 */
function parseRope(j: Record<string, unknown>, source: string, seen: Set<string>): { theta: number; scaling: Gemma2RopeScaling | null } {
  seen.add('rope_theta');
  seen.add('rope_parameters');
  seen.add('rope_scaling');
  const params = j.rope_parameters ?? j.rope_scaling ?? null;
  let theta: unknown = j.rope_theta;
  let field = 'rope_theta';
  let scaling: Gemma2RopeScaling | null = null;
  if (params !== null) {
    const pf = j.rope_parameters !== undefined && j.rope_parameters !== null ? 'rope_parameters' : 'rope_scaling';
    if (typeof params !== 'object' || Array.isArray(params)) throw new Gemma2ConfigError(source, pf, `expected an object, got ${JSON.stringify(params)}`);
    const p = params as Record<string, unknown>;
    const type = p.rope_type ?? p.type ?? 'default';
    if (type === 'linear' || type === 'dynamic') {
      const factor = p.factor;
      if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1) {
        throw new Gemma2ConfigError(source, `${pf}.factor`, `"${type}" RoPE needs a factor >= 1, got ${JSON.stringify(factor)}`);
      }
      scaling = { rope_type: type, factor };
    } else if (type !== 'default') {
      throw new Gemma2ConfigError(source, `${pf}.rope_type`, `supported RoPE types are "default", "linear" and "dynamic", got ${JSON.stringify(type)}`);
    }
    if (p.partial_rotary_factor !== undefined && p.partial_rotary_factor !== null && p.partial_rotary_factor !== 1) {
      // Gemma-2 rotates the whole head: a partial factor makes the reference fail on mismatched shapes.
      throw new Gemma2ConfigError(source, `${pf}.partial_rotary_factor`, `Gemma-2 rotates whole heads (1.0), got ${JSON.stringify(p.partial_rotary_factor)}`);
    }
    if (p.rope_theta !== undefined) {
      theta = p.rope_theta;
      field = `${pf}.rope_theta`;
    }
  }
  theta = theta ?? DEFAULTS.rope_theta;
  if (typeof theta !== 'number' || !(theta > 0) || !Number.isFinite(theta)) {
    throw new Gemma2ConfigError(source, field, `expected a positive number, got ${JSON.stringify(theta)}`);
  }
  return { theta, scaling };
}
