/**
 * CLIP configuration as transformers' `config.json` holds it (`CLIPConfig` with `text_config` and
 * `vision_config`; transformers/models/clip/configuration_clip.py). Fields absent from a file take
 * transformers' defaults; fields we do not use are ignored (checkpoints carry many); fields we use
 * are type-checked and a wrong one is an error naming it.
 */

export interface CLIPTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: string;
  layer_norm_eps: number;
  pad_token_id: number;
  bos_token_id: number;
  /** 2 in the original OpenAI configs: then the pooled token is the argmax of the ids (see `pooledIndex`). */
  eos_token_id: number;
}

export interface CLIPVisionConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_channels: number;
  image_size: number;
  patch_size: number;
  hidden_act: string;
  layer_norm_eps: number;
}

export interface CLIPConfig {
  text_config: CLIPTextConfig;
  vision_config: CLIPVisionConfig;
  projection_dim: number;
  logit_scale_init_value: number;
}

const TEXT_DEFAULTS: CLIPTextConfig = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  pad_token_id: 1,
  bos_token_id: 49406,
  eos_token_id: 49407,
};

const VISION_DEFAULTS: CLIPVisionConfig = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};

function pick<T extends object>(raw: unknown, defaults: T, where: string): T {
  if (raw === undefined || raw === null) return { ...defaults };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: expected an object`);
  const out = { ...defaults } as Record<string, unknown>;
  for (const [key, def] of Object.entries(defaults)) {
    const v = (raw as Record<string, unknown>)[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== typeof def) throw new Error(`${where}.${key}: expected a ${typeof def}, got ${JSON.stringify(v)}`);
    if (typeof v === 'number' && Number.isInteger(def) && key !== 'layer_norm_eps' && !Number.isInteger(v)) {
      throw new Error(`${where}.${key}: expected an integer, got ${v}`);
    }
    out[key] = v;
  }
  return out as T;
}

/** Reads a CLIPConfig from a parsed `config.json`; `where` names the file in errors. */
export function parseCLIPConfig(raw: unknown, where = 'config.json'): CLIPConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  const modelType = r.model_type;
  if (modelType !== undefined && modelType !== 'clip') throw new Error(`${where}: model_type is "${String(modelType)}", expected "clip"`);
  const text_config = pick(r.text_config, TEXT_DEFAULTS, `${where}: text_config`);
  const vision_config = pick(r.vision_config, VISION_DEFAULTS, `${where}: vision_config`);
  const top = pick(r, { projection_dim: 512, logit_scale_init_value: 2.6592 }, where);
  for (const [name, c] of [['text_config', text_config], ['vision_config', vision_config]] as const) {
    if (c.hidden_size % c.num_attention_heads !== 0) {
      throw new Error(`${where}: ${name}.hidden_size (${c.hidden_size}) must be divisible by num_attention_heads (${c.num_attention_heads})`);
    }
  }
  if (vision_config.image_size % vision_config.patch_size !== 0) {
    throw new Error(`${where}: vision_config.image_size (${vision_config.image_size}) must be a multiple of patch_size (${vision_config.patch_size})`);
  }
  return { text_config, vision_config, ...top };
}
