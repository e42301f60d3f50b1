/**
 * CLIPModel, mirroring transformers/models/clip/modeling_clip.py with its parameter names
 * (`vision_model.encoder.layers.0.self_attn.q_proj.weight`, `text_projection.weight`, `logit_scale`,
 * the misspelled `vision_model.pre_layrnorm` kept as is), so a transformers checkpoint such as
 * `openai/clip-vit-large-patch14` loads key for key.
 *
 * Pre-norm transformer layers (x + attn(ln1(x)); x + mlp(ln2(x))). The vision tower is a ViT: patch
 * convolution, CLS token, learned positions, `pre_layrnorm`, and `post_layernorm` on the CLS token. The
 * text tower uses a causal mask plus the padding mask and pools at the end-of-text token. Images
 * come in NHWC, already resized and normalised (see eval/clipImageProcessor.ts).
 */
import { tf, Tensor, Tensor2D, Tensor4D } from '../../backend';
import { Conv2d, LayerNorm, Linear, Module, Parameter, activation, normal, constant } from '../../nn';
import { CLIPConfig, CLIPTextConfig, CLIPVisionConfig } from './config';

/** A large negative additive bias for masked attention logits (exp underflows to exactly 0). */
const MASKED = -1e9;

/** `nn.Embedding`: a [num, dim] table looked up by integer ids. */
export class Embedding extends Module {
  readonly weight: Parameter;
  constructor(readonly num: number, readonly dim: number) {
    super();
    this.weight = this.param('weight', [num, dim], normal(0.02));
  }

  /** ids: int32 [...] -> [..., dim] */
  forward(ids: Tensor): Tensor {
    return tf.tidy(() => {
      const flat = ids.reshape([-1]).toInt();
      return tf.gather(this.weight.value, flat).reshape([...ids.shape, this.dim]);
    });
  }
}

/** Multi-head self-attention with q/k/v/out projections (all with bias). */
export class CLIPAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  readonly headDim: number;

  constructor(readonly hidden: number, readonly heads: number) {
    super();
    this.headDim = hidden / heads;
    this.k_proj = this.module('k_proj', new Linear(hidden, hidden));
    this.v_proj = this.module('v_proj', new Linear(hidden, hidden));
    this.q_proj = this.module('q_proj', new Linear(hidden, hidden));
    this.out_proj = this.module('out_proj', new Linear(hidden, hidden));
  }

  /** x: [B, L, C]; bias: additive [B, 1, L, L] or null -> [B, L, C] */
  forward(x: Tensor, bias: Tensor | null): Tensor {
    return tf.tidy(() => {
      const [b, l] = x.shape;
      const split = (t: Tensor) => t.reshape([b, l, this.heads, this.headDim]).transpose([0, 2, 1, 3]); // [B, H, L, Dh]
      const q = split(this.q_proj.forward(x));
      const k = split(this.k_proj.forward(x));
      const v = split(this.v_proj.forward(x));
      let scores = tf.matMul(q, k, false, true).mul(1 / Math.sqrt(this.headDim)); // [B, H, L, L]
      if (bias) scores = scores.add(bias);
      const out = tf.matMul(tf.softmax(scores, -1), v); // [B, H, L, Dh]
      return this.out_proj.forward(out.transpose([0, 2, 1, 3]).reshape([b, l, this.hidden]));
    });
  }
}

export class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(hidden: number, intermediate: number, act: string) {
    super();
    this.act = activation(act);
    this.fc1 = this.module('fc1', new Linear(hidden, intermediate));
    this.fc2 = this.module('fc2', new Linear(intermediate, hidden));
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => this.fc2.forward(this.act(this.fc1.forward(x))));
  }
}

export class CLIPEncoderLayer extends Module {
  readonly self_attn: CLIPAttention;
  readonly layer_norm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layer_norm2: LayerNorm;

  constructor(c: CLIPTextConfig | CLIPVisionConfig) {
    super();
    this.self_attn = this.module('self_attn', new CLIPAttention(c.hidden_size, c.num_attention_heads));
    this.layer_norm1 = this.module('layer_norm1', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
    this.mlp = this.module('mlp', new CLIPMLP(c.hidden_size, c.intermediate_size, c.hidden_act));
    this.layer_norm2 = this.module('layer_norm2', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
  }

  /** x: [B, L, C] -> [B, L, C] */
  forward(x: Tensor, bias: Tensor | null): Tensor {
    return tf.tidy(() => {
      const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), bias));
      return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
    });
  }
}

export class CLIPEncoder extends Module {
  readonly layers: CLIPEncoderLayer[];
  constructor(c: CLIPTextConfig | CLIPVisionConfig) {
    super();
    this.layers = this.moduleList('layers', Array.from({ length: c.num_hidden_layers }, () => new CLIPEncoderLayer(c)));
  }

  forward(x: Tensor, bias: Tensor | null): Tensor {
    return tf.tidy(() => {
      let h = x;
      for (const layer of this.layers) h = layer.forward(h, bias);
      return h;
    });
  }
}

export class CLIPVisionEmbeddings extends Module {
  readonly class_embedding: Parameter;
  readonly patch_embedding: Conv2d;
  readonly position_embedding: Embedding;
  readonly numPositions: number;

  constructor(readonly c: CLIPVisionConfig) {
    super();
    this.class_embedding = this.param('class_embedding', [c.hidden_size], normal(0.02));
    this.patch_embedding = this.module('patch_embedding', new Conv2d(c.num_channels, c.hidden_size, c.patch_size, { stride: c.patch_size, bias: false }));
    this.numPositions = (c.image_size / c.patch_size) ** 2 + 1;
    this.position_embedding = this.module('position_embedding', new Embedding(this.numPositions, c.hidden_size));
  }

  /** pixels: [B, S, S, 3] NHWC -> [B, 1 + (S/p)^2, C] */
  forward(pixels: Tensor4D): Tensor {
    return tf.tidy(() => {
      const [b, h, w] = pixels.shape;
      if (h !== this.c.image_size || w !== this.c.image_size) {
        throw new Error(`CLIP vision: expected ${this.c.image_size}x${this.c.image_size} images, got ${h}x${w}`);
      }
      const patches = this.patch_embedding.forward(pixels); // [B, S/p, S/p, C]
      const tokens = patches.reshape([b, -1, this.c.hidden_size]); // row-major over (h, w), as torch's flatten(2)
      const cls = this.class_embedding.value.reshape([1, 1, this.c.hidden_size]).tile([b, 1, 1]);
      const x = tf.concat([cls, tokens], 1); // [B, N+1, C]
      return x.add(this.position_embedding.weight.value.expandDims(0));
    });
  }
}

export class CLIPVisionTransformer extends Module {
  readonly embeddings: CLIPVisionEmbeddings;
  readonly pre_layrnorm: LayerNorm;
  readonly encoder: CLIPEncoder;
  readonly post_layernorm: LayerNorm;

  constructor(readonly c: CLIPVisionConfig) {
    super();
    this.embeddings = this.module('embeddings', new CLIPVisionEmbeddings(c));
    this.pre_layrnorm = this.module('pre_layrnorm', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
    this.encoder = this.module('encoder', new CLIPEncoder(c));
    this.post_layernorm = this.module('post_layernorm', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
  }

  /** pixels: [B, S, S, 3] -> pooled [B, C] (post_layernorm of the CLS token) */
  pooled(pixels: Tensor4D): Tensor2D {
    return tf.tidy(() => {
      const x = this.pre_layrnorm.forward(this.embeddings.forward(pixels));
      const h = this.encoder.forward(x, null); // [B, L, C]
      const cls = h.slice([0, 0, 0], [-1, 1, -1]).squeeze([1]);
      return this.post_layernorm.forward(cls) as Tensor2D;
    });
  }
}

/**
 * Index of the pooled token per row. With `eos_token_id == 2` (the original OpenAI configs) it is the
 * first position of the largest id, as transformers' legacy rule (the end-of-text id is the largest
 * in the real vocabulary); otherwise the first position of `eos_token_id`.
 */
export function pooledIndex(ids: ArrayLike<number>, batch: number, length: number, eosTokenId: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < batch; i++) {
    let best = 0;
    if (eosTokenId === 2) {
      for (let j = 1; j < length; j++) if (ids[i * length + j] > ids[i * length + best]) best = j;
    } else {
      best = -1;
      for (let j = 0; j < length && best < 0; j++) if (ids[i * length + j] === eosTokenId) best = j;
      // No end-of-text token (truncated caption): transformers' argmax of (ids == eos) gives 0.
      if (best < 0) best = 0;
    }
    out.push(best);
  }
  return out;
}

export class CLIPTextEmbeddings extends Module {
  readonly token_embedding: Embedding;
  readonly position_embedding: Embedding;
  constructor(readonly c: CLIPTextConfig) {
    super();
    this.token_embedding = this.module('token_embedding', new Embedding(c.vocab_size, c.hidden_size));
    this.position_embedding = this.module('position_embedding', new Embedding(c.max_position_embeddings, c.hidden_size));
  }

  /** ids: [B, L] int32 -> [B, L, C] */
  forward(ids: Tensor2D): Tensor {
    return tf.tidy(() => {
      const l = ids.shape[1];
      if (l > this.c.max_position_embeddings) {
        throw new Error(`CLIP text: sequence length ${l} exceeds max_position_embeddings ${this.c.max_position_embeddings} (truncate the captions)`);
      }
      const pos = this.position_embedding.weight.value.slice([0, 0], [l, -1]);
      return this.token_embedding.forward(ids).add(pos.expandDims(0));
    });
  }
}

export class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly final_layer_norm: LayerNorm;

  constructor(readonly c: CLIPTextConfig) {
    super();
    this.embeddings = this.module('embeddings', new CLIPTextEmbeddings(c));
    this.encoder = this.module('encoder', new CLIPEncoder(c));
    this.final_layer_norm = this.module('final_layer_norm', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
  }

  /**
   * ids: [B, L] int32; mask: [B, L] (1 = token, 0 = padding) or null -> pooled [B, C].
   * `ids` are read back once to find the pooled position (a host-side argmax).
   */
  pooled(ids: Tensor2D, mask: Tensor2D | null): Tensor2D {
    return tf.tidy(() => {
      const [b, l] = ids.shape;
      // 1. Additive bias: causal (key j > query i) plus padding (key j masked), [B, 1, L, L].
      const causal = tf.linalg.bandPart(tf.ones([l, l]), -1, 0); // 1 on and below the diagonal
      let allowed = causal.reshape([1, 1, l, l]);
      if (mask) allowed = allowed.mul(mask.toFloat().reshape([b, 1, 1, l]));
      const bias = tf.scalar(1).sub(allowed).mul(MASKED);
      // 2. Encoder and final norm.
      const h = this.final_layer_norm.forward(this.encoder.forward(this.embeddings.forward(ids), bias)); // [B, L, C]
      // 3. Pool at the end-of-text position.
      const index = pooledIndex(ids.dataSync(), b, l, this.c.eos_token_id);
      const rows = tf.tensor1d(index.map((j, i) => i * l + j), 'int32');
      return tf.gather(h.reshape([b * l, this.c.hidden_size]), rows) as Tensor2D;
    });
  }
}

/** The two towers and their projections into the shared embedding space. */
export class CLIPModel extends Module {
  readonly text_model: CLIPTextTransformer;
  readonly vision_model: CLIPVisionTransformer;
  readonly visual_projection: Linear;
  readonly text_projection: Linear;
  readonly logit_scale: Parameter;

  constructor(readonly config: CLIPConfig) {
    super();
    const { text_config: t, vision_config: v, projection_dim: p } = config;
    this.text_model = this.module('text_model', new CLIPTextTransformer(t));
    this.vision_model = this.module('vision_model', new CLIPVisionTransformer(v));
    this.visual_projection = this.module('visual_projection', new Linear(v.hidden_size, p, { bias: false }));
    this.text_projection = this.module('text_projection', new Linear(t.hidden_size, p, { bias: false }));
    this.logit_scale = this.param('logit_scale', [], constant(config.logit_scale_init_value));
  }

  /** pixels: [B, S, S, 3] normalised NHWC -> [B, projection_dim] (not normalised) */
  getImageFeatures(pixels: Tensor4D): Tensor2D {
    return tf.tidy(() => this.visual_projection.forward(this.vision_model.pooled(pixels)) as Tensor2D);
  }

  /** ids: [B, L] int32, mask: [B, L] or null -> [B, projection_dim] (not normalised) */
  getTextFeatures(ids: Tensor2D, mask: Tensor2D | null = null): Tensor2D {
    return tf.tidy(() => this.text_projection.forward(this.text_model.pooled(ids, mask)) as Tensor2D);
  }

  /** logits_per_image [B_img, B_txt] = exp(logit_scale) * cosine similarities. */
  logitsPerImage(imageEmbeds: Tensor2D, textEmbeds: Tensor2D): Tensor2D {
    return tf.tidy(() => {
      const i = imageEmbeds.div(imageEmbeds.norm('euclidean', -1, true));
      const t = textEmbeds.div(textEmbeds.norm('euclidean', -1, true));
      return tf.matMul(i, t, false, true).mul(this.logit_scale.value.exp()) as Tensor2D;
    });
  }
}
