/**
 * Gemma-2 decoder stack up to the last hidden state, mirroring transformers'
 * `models/gemma2/modeling_gemma2.py` (`Gemma2Model` with eager attention): same module tree and
 * parameter keys (`embed_tokens.weight`, `layers.N.self_attn.q_proj.weight`, `layers.N.mlp.gate_proj.weight`,
 * `layers.N.{input,post_attention,pre_feedforward,post_feedforward}_layernorm.weight`, `norm.weight`),
 * so a `Gemma2Model` state dict loads key for key. The LM head is not built: SANA conditions on
 * `last_hidden_state` (after the final norm).
 *
 * Kept from the reference on purpose: attention scores scaled by query_pre_attn_scalar^-0.5 and
 * soft-capped *before* the mask is added (eager attention; SDPA would skip the cap), the embedding
 * normaliser sqrt(hidden_size) rounded to float32, RMSNorm scaling by (1 + weight), RoPE positions
 * 0..S-1 whatever the padding. Everything is computed in float32.
 */
import { tf, Tensor, Tensor2D, Tensor3D } from '../../backend';
import { Linear, Module, Parameter, activation, normal, zeros } from '../../nn';
import { Gemma2Config, Gemma2LayerType } from './gemma2Config';
import { attentionBias } from './attentionMask';
import { applyRotary, rotaryTables, scaledInverseFrequencies } from './rotary';

/** Gemma's RMSNorm: x / sqrt(mean(x^2) + eps) * (1 + weight); the weight starts at 0. */
export class Gemma2RMSNorm extends Module {
  readonly weight: Parameter;

  constructor(readonly dim: number, readonly eps: number) {
    super();
    this.weight = this.param('weight', [dim], zeros);
  }

  /** x: [..., dim] -> [..., dim]. */
  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const normed = x.mul(x.square().mean(-1, true).add(this.eps).rsqrt());
      return normed.mul(this.weight.value.add(1));
    });
  }
}

/** `nn.Embedding` without padding handling: one row of `weight` [vocab, dim] per id. */
export class TokenEmbedding extends Module {
  readonly weight: Parameter;

  constructor(readonly numEmbeddings: number, readonly dim: number, std: number) {
    super();
    this.weight = this.param('weight', [numEmbeddings, dim], normal(std));
  }

  /** ids: [B, S] int32 -> [B, S, dim]. */
  forward(ids: Tensor2D): Tensor3D {
    return tf.tidy(() => {
      const [b, s] = ids.shape;
      return tf.gather(this.weight.value, ids.reshape([b * s])).reshape([b, s, this.dim]) as Tensor3D;
    });
  }
}

/** Rotary tables and attention biases shared by every layer of one forward call. */
export interface Gemma2AttentionContext {
  cos: Tensor2D; // [S, head_dim]
  sin: Tensor2D; // [S, head_dim]
  /** Additive bias per layer type, [B, 1, S, S]. */
  bias: Record<Gemma2LayerType, Tensor>;
}

/** Grouped-query self-attention with RoPE and logit soft-capping. */
export class Gemma2Attention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  private readonly heads: number;
  private readonly kvHeads: number;
  private readonly headDim: number;
  private readonly scaling: number;
  private readonly softcap: number | null;

  constructor(readonly config: Gemma2Config, readonly layerType: Gemma2LayerType) {
    super();
    const c = config;
    const std = 0.02;
    const lin = (i: number, o: number) => new Linear(i, o, { bias: c.attention_bias, weightInit: normal(std), biasInit: zeros });
    this.heads = c.num_attention_heads;
    this.kvHeads = c.num_key_value_heads;
    this.headDim = c.head_dim;
    this.scaling = c.query_pre_attn_scalar ** -0.5;
    this.softcap = c.attn_logit_softcapping;
    // 1. projections (keys as in the checkpoint)
    this.q_proj = this.module('q_proj', lin(c.hidden_size, this.heads * this.headDim));
    this.k_proj = this.module('k_proj', lin(c.hidden_size, this.kvHeads * this.headDim));
    this.v_proj = this.module('v_proj', lin(c.hidden_size, this.kvHeads * this.headDim));
    this.o_proj = this.module('o_proj', lin(this.heads * this.headDim, c.hidden_size));
  }

  /** x: [B, S, hidden] -> [B, S, hidden]. */
  forward(x: Tensor3D, ctx: Gemma2AttentionContext): Tensor3D {
    return tf.tidy(() => {
      const [b, s] = x.shape;
      const h = this.heads;
      const kvh = this.kvHeads;
      const d = this.headDim;
      const group = h / kvh;
      // 1. project and split heads, rotate q and k
      const q = applyRotary(this.q_proj.forward(x).reshape([b, s, h, d]).transpose([0, 2, 1, 3]), ctx.cos, ctx.sin); // [B, H, S, D]
      const k = applyRotary(this.k_proj.forward(x).reshape([b, s, kvh, d]).transpose([0, 2, 1, 3]), ctx.cos, ctx.sin); // [B, KV, S, D]
      const v = this.v_proj.forward(x).reshape([b, s, kvh, d]).transpose([0, 2, 1, 3]); // [B, KV, S, D]
      // 2. scores; query head j uses kv head floor(j / group) (repeat_kv), so the group's queries are
      //    stacked along the row axis instead of copying k and v
      const qg = q.reshape([b, kvh, group * s, d]); // [B, KV, G*S, D]
      let scores = tf.matMul(qg, k, false, true).mul(this.scaling); // [B, KV, G*S, S]
      // 3. soft-cap, then mask (the order of eager attention)
      if (this.softcap !== null) scores = scores.div(this.softcap).tanh().mul(this.softcap);
      scores = scores.reshape([b, kvh, group, s, s]).add(ctx.bias[this.layerType].reshape([b, 1, 1, s, s]));
      const probs = tf.softmax(scores, -1).reshape([b, kvh, group * s, s]);
      // 4. weighted values, merge heads, output projection
      const out = tf.matMul(probs, v).reshape([b, h, s, d]).transpose([0, 2, 1, 3]).reshape([b, s, h * d]); // [B, S, H*D]
      return this.o_proj.forward(out) as Tensor3D;
    });
  }
}

/** Gated MLP: down(act(gate(x)) * up(x)). */
export class Gemma2MLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(config: Gemma2Config) {
    super();
    const lin = (i: number, o: number) => new Linear(i, o, { bias: false, weightInit: normal(0.02) });
    this.gate_proj = this.module('gate_proj', lin(config.hidden_size, config.intermediate_size));
    this.up_proj = this.module('up_proj', lin(config.hidden_size, config.intermediate_size));
    this.down_proj = this.module('down_proj', lin(config.intermediate_size, config.hidden_size));
    this.act = activation(config.hidden_activation);
  }

  /** x: [B, S, hidden] -> [B, S, hidden]. */
  forward(x: Tensor): Tensor {
    return tf.tidy(() => this.down_proj.forward(this.act(this.gate_proj.forward(x)).mul(this.up_proj.forward(x))));
  }
}

/** One decoder layer: attention and MLP, each wrapped in a pre-norm and a post-norm, with residuals. */
export class Gemma2DecoderLayer extends Module {
  readonly self_attn: Gemma2Attention;
  readonly mlp: Gemma2MLP;
  readonly input_layernorm: Gemma2RMSNorm;
  readonly post_attention_layernorm: Gemma2RMSNorm;
  readonly pre_feedforward_layernorm: Gemma2RMSNorm;
  readonly post_feedforward_layernorm: Gemma2RMSNorm;

  constructor(config: Gemma2Config, readonly layerType: Gemma2LayerType) {
    super();
    const norm = () => new Gemma2RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.self_attn = this.module('self_attn', new Gemma2Attention(config, layerType));
    this.mlp = this.module('mlp', new Gemma2MLP(config));
    this.input_layernorm = this.module('input_layernorm', norm());
    this.post_attention_layernorm = this.module('post_attention_layernorm', norm());
    this.pre_feedforward_layernorm = this.module('pre_feedforward_layernorm', norm());
    this.post_feedforward_layernorm = this.module('post_feedforward_layernorm', norm());
  }

  /** h: [B, S, hidden] -> [B, S, hidden]. */
  forward(h: Tensor3D, ctx: Gemma2AttentionContext): Tensor3D {
    return tf.tidy(() => {
      // 1. h += post_attention_norm(attn(input_norm(h)))
      const attn = this.self_attn.forward(this.input_layernorm.forward(h) as Tensor3D, ctx);
      const h1 = h.add(this.post_attention_layernorm.forward(attn));
      // 2. h += post_feedforward_norm(mlp(pre_feedforward_norm(h)))
      const ff = this.mlp.forward(this.pre_feedforward_layernorm.forward(h1));
      return h1.add(this.post_feedforward_layernorm.forward(ff)) as Tensor3D;
    });
  }
}

export interface Gemma2Output {
  /** [B, S, hidden] after the final norm: what SANA uses as encoder_hidden_states. */
  lastHiddenState: Tensor3D;
  /**
   * With `outputHiddenStates`: [0] the scaled embeddings, [i] the output of layer i-1 (before the final
   * norm); num_hidden_layers + 1 entries of [B, S, hidden].
   */
  hiddenStates?: Tensor3D[];
}

export interface Gemma2ForwardOptions {
  outputHiddenStates?: boolean;
}

/** `Gemma2Model`: token ids -> last hidden state. */
export class Gemma2Model extends Module {
  readonly embed_tokens: TokenEmbedding;
  readonly layers: Gemma2DecoderLayer[];
  readonly norm: Gemma2RMSNorm;
  /** sqrt(hidden_size) as the reference's float32 tensor holds it. */
  private readonly normalizer: number;

  constructor(readonly config: Gemma2Config) {
    super();
    this.embed_tokens = this.module('embed_tokens', new TokenEmbedding(config.vocab_size, config.hidden_size, 0.02));
    this.layers = this.moduleList('layers', config.layer_types.map((t) => new Gemma2DecoderLayer(config, t)));
    this.norm = this.module('norm', new Gemma2RMSNorm(config.hidden_size, config.rms_norm_eps));
    this.normalizer = Math.fround(Math.sqrt(config.hidden_size));
  }

  /**
   * @param inputIds [B, S] int32 token ids (< vocab_size).
   * @param attentionMask [B, S] 1 = token, 0 = padding; omitted = no padding. Rows of padded
   *   positions are not meaningful (as in the reference, where a padded row on a sliding layer can
   *   see no key at all); rows of tokens never depend on the padding.
   */
  forward(inputIds: Tensor2D, attentionMask: Tensor2D | null = null, opts: Gemma2ForwardOptions = {}): Gemma2Output {
    const c = this.config;
    if (inputIds.rank !== 2) throw new Error(`Gemma2Model: input_ids must be [batch, seq], got shape [${inputIds.shape}]`);
    if (inputIds.dtype !== 'int32') throw new Error(`Gemma2Model: input_ids must be int32, got ${inputIds.dtype}`);
    const [b, s] = inputIds.shape;
    if (attentionMask && (attentionMask.rank !== 2 || attentionMask.shape[0] !== b || attentionMask.shape[1] !== s)) {
      throw new Error(`Gemma2Model: attention_mask must have the shape of input_ids [${b}, ${s}], got [${attentionMask.shape}]`);
    }
    // Longer sequences than max_position_embeddings are allowed, as in the reference: RoPE extrapolates
    // (and "dynamic" scaling exists for exactly that case).
    return tf.tidy(() => {
      // 1. shared per-call tables: rotary angles for positions 0..S-1 and one mask per layer type
      const inv = scaledInverseFrequencies(c.head_dim, c.rope_theta, c.rope_scaling, s, c.max_position_embeddings);
      const tables = rotaryTables(s, c.head_dim, c.rope_theta, inv);
      const ctx: Gemma2AttentionContext = {
        cos: tf.tensor2d(tables.cos, [s, c.head_dim]),
        sin: tf.tensor2d(tables.sin, [s, c.head_dim]),
        bias: {
          full_attention: attentionBias(b, s, attentionMask, null),
          sliding_attention: attentionBias(b, s, attentionMask, c.sliding_window),
        },
      };
      // 2. embeddings scaled by sqrt(hidden)
      let h = this.embed_tokens.forward(inputIds).mul(this.normalizer) as Tensor3D; // [B, S, hidden]
      const hiddenStates: Tensor3D[] = [];
      if (opts.outputHiddenStates) hiddenStates.push(h);
      // 3. decoder layers
      for (const layer of this.layers) {
        h = layer.forward(h, ctx);
        if (opts.outputHiddenStates) hiddenStates.push(h);
      }
      // 4. final norm
      const lastHiddenState = this.norm.forward(h) as Tensor3D;
      return opts.outputHiddenStates ? { lastHiddenState, hiddenStates } : { lastHiddenState };
    });
  }
}
