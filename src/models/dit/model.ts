/**
 * `SanaTransformer2DModel`, the SANA linear DiT, mirroring diffusers
 * `models/transformers/sana_transformer.py` (parameter names, config, numerics). Kept from the
 * reference: the adaLN-single modulation, ReLU linear self-attention in float32, softmax
 * cross-attention with the text mask as an additive -10000 bias, GLUMBConv feed-forward, the final
 * modulated LayerNorm and the unpatchify order. Different by design: activations are NHWC (the
 * reference takes and returns NCHW latents), and gradient checkpointing is a per-call option.
 */
import { tf, Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../../backend';
import { Conv2d, Linear, Module, Parameter, RMSNorm, constant, modulatedLayerNorm, normal } from '../../nn';
import { SanaTransformerBlock, BlockContext } from './block';
import { recomputeInBackward } from './checkpoint';
import { SanaTransformerConfig, innerDim, validateSanaTransformerConfig } from './config';
import { AdaLayerNormSingle, CaptionProjection, PatchEmbed, SanaCombinedTimestepGuidanceEmbeddings, TimeEmbedding } from './embeddings';
import { CAPTION_NORM_INIT, xavierLinear } from './init';

/** eps of the final modulated LayerNorm (fixed in the reference, independent of norm_eps). */
const NORM_OUT_EPS = 1e-6;
/** eps of caption_norm (diffusers `RMSNorm(inner_dim, eps=1e-5)`). */
const CAPTION_NORM_EPS = 1e-5;
/** Logit bias for padded text tokens: diffusers turns the 0/1 mask into (1 - mask) * -10000. */
const MASKED_LOGIT_BIAS = -10000;

/** Inputs of one forward pass. */
export interface SanaTransformerInputs {
  /** [B, H, W, in_channels] NHWC latent; H and W divisible by patch_size. */
  hiddenStates: Tensor4D;
  /** [B, L, caption_channels] text encoder hidden states (Gemma-2 last hidden state). */
  encoderHiddenStates: Tensor3D;
  /** [B, L] 1 = real token, 0 = padding (any numeric dtype); omitted = attend to all tokens. */
  encoderAttentionMask?: Tensor2D;
  /** [B] timesteps in model units (flow sigma * 1000 for SANA; what the pipeline passes). */
  timestep: Tensor1D;
  /** [B] guidance values, required exactly when config.guidance_embeds (SANA-Sprint). */
  guidance?: Tensor1D;
}

export interface SanaForwardOptions {
  /**
   * Recompute each block in the backward pass instead of keeping its activations (same gradients,
   * lower peak memory, about one extra forward pass of compute). Default: `model.gradientCheckpointing`.
   */
  checkpointing?: boolean;
  /**
   * Receives intermediate tensors (token layout [B, N, C]) under the reference's module names:
   * `patch_embed`, `time_embed.timestep`, `time_embed.embedded_timestep`, `caption_norm`,
   * `transformer_blocks.<i>`, `norm_out`. The tensors are disposed after the call: copy what you keep.
   */
  onIntermediate?: (name: string, t: Tensor) => void;
}

/** A layer adapters (LoRA) can attach to. */
export type AdapterTarget = Linear | Conv2d;

/**
 * The SANA transformer. Construct from a config (see `parseSanaTransformerConfig` and the presets),
 * then `initialize(seed)` for SANA's from-scratch initialisation or `loadStateDict` for a checkpoint
 * (`io/pretrained/transformer.ts` loads diffusers folders).
 */
export class SanaTransformer2DModel extends Module {
  readonly config: SanaTransformerConfig;
  readonly patch_embed: PatchEmbed;
  readonly time_embed: AdaLayerNormSingle | SanaCombinedTimestepGuidanceEmbeddings;
  readonly caption_projection: CaptionProjection;
  readonly caption_norm: RMSNorm;
  readonly transformer_blocks: SanaTransformerBlock[];
  readonly scale_shift_table: Parameter;
  readonly proj_out: Linear;
  /** Default for `SanaForwardOptions.checkpointing` (diffusers' `enable_gradient_checkpointing()`). */
  gradientCheckpointing = false;

  constructor(config: SanaTransformerConfig) {
    super();
    this.config = validateSanaTransformerConfig(config);
    const c = this.config;
    const dim = innerDim(c);
    // 1. Patch embedding (+ optional sin-cos position table).
    this.patch_embed = this.module('patch_embed', new PatchEmbed(c.in_channels, dim, c.patch_size, c.sample_size, c.interpolation_scale));
    // 2. Timestep (and guidance) conditioning; caption projection and its learnable-scale RMSNorm.
    this.time_embed = this.module('time_embed', c.guidance_embeds ? new SanaCombinedTimestepGuidanceEmbeddings(dim) : new AdaLayerNormSingle(dim));
    this.caption_projection = this.module('caption_projection', new CaptionProjection(c.caption_channels, dim));
    this.caption_norm = this.module('caption_norm', new RMSNorm(dim, { eps: CAPTION_NORM_EPS, weightInit: constant(CAPTION_NORM_INIT) }));
    // 3. Blocks.
    this.transformer_blocks = this.moduleList('transformer_blocks', Array.from({ length: c.num_layers }, () => new SanaTransformerBlock(c)));
    // 4. Output: modulated norm (no parameters besides the table) and projection to patches.
    this.scale_shift_table = this.param('scale_shift_table', [2, dim], normal(1 / Math.sqrt(dim)));
    this.proj_out = this.module('proj_out', new Linear(dim, c.patch_size * c.patch_size * c.out_channels, xavierLinear));
  }

  /**
   * Velocity prediction for flow matching.
   * @returns [B, H, W, out_channels] NHWC
   */
  forward(inputs: SanaTransformerInputs, opts: SanaForwardOptions = {}): Tensor4D {
    const { b, h, w } = this.checkInputs(inputs);
    const capture = opts.onIntermediate;
    const checkpointing = opts.checkpointing ?? this.gradientCheckpointing;
    return tf.tidy(() => {
      const c = this.config;
      const p = c.patch_size;
      // 1. Patches -> tokens.
      let x = this.patch_embed.forward(inputs.hiddenStates); // [B, N, D]
      capture?.('patch_embed', x);
      // 2. Conditioning.
      const time = this.embedTime(inputs);
      capture?.('time_embed.timestep', time.modulation);
      capture?.('time_embed.embedded_timestep', time.embedded);
      const caption = this.caption_norm.forward(this.caption_projection.forward(inputs.encoderHiddenStates)) as Tensor3D; // [B, L, D]
      capture?.('caption_norm', caption);
      const captionBias = inputs.encoderAttentionMask ? maskToBias(inputs.encoderAttentionMask) : null; // [B, 1, 1, L]
      const ctx: BlockContext = { caption, captionBias, modulation: time.modulation, height: h, width: w };
      // 3. Blocks.
      this.transformer_blocks.forEach((block, i) => {
        x = checkpointing ? this.checkpointedBlock(block, x, ctx) : block.forward(x, ctx);
        capture?.(`transformer_blocks.${i}`, x);
      });
      // 4. Final modulated norm: shift first, then scale.
      const [shift, scale] = tf.split(this.scale_shift_table.value.expandDims(0).add(time.embedded.expandDims(1)), 2, 1); // [B, 1, D] each
      const normed = modulatedLayerNorm(x, scale, shift, NORM_OUT_EPS);
      capture?.('norm_out', normed);
      // 5. Unpatchify: token (i, j) channel (pi, pj, c) -> pixel (i*p + pi, j*p + pj) channel c.
      const patches = this.proj_out.forward(normed).reshape([b, h, w, p, p, c.out_channels]);
      return patches.transpose([0, 1, 3, 2, 4, 5]).reshape([b, h * p, w * p, c.out_channels]) as Tensor4D;
    });
  }

  /** Every Linear and Conv2d layer by its module path (`transformer_blocks.0.attn1.to_q`, ...). */
  adapterTargets(): Map<string, AdapterTarget> {
    return namedAdapterTargets(this);
  }

  private embedTime(inputs: SanaTransformerInputs): TimeEmbedding {
    if (this.time_embed instanceof SanaCombinedTimestepGuidanceEmbeddings) return this.time_embed.forward(inputs.timestep, inputs.guidance!);
    return this.time_embed.forward(inputs.timestep);
  }

  /** One block whose activations are recomputed in the backward pass. */
  private checkpointedBlock(block: SanaTransformerBlock, x: Tensor3D, ctx: BlockContext): Tensor3D {
    const extra = ctx.captionBias ? [ctx.captionBias] : [];
    const run = ([xi, caption, modulation, bias]: Tensor[]) =>
      block.forward(xi as Tensor3D, { ...ctx, caption: caption as Tensor3D, modulation: modulation as Tensor2D, captionBias: (bias as Tensor4D) ?? null });
    return recomputeInBackward(run, [x, ctx.caption, ctx.modulation, ...extra], block.trainableVariables()) as Tensor3D;
  }

  /** Shape checks with errors that say what was expected; returns batch and token grid. */
  private checkInputs(inputs: SanaTransformerInputs): { b: number; h: number; w: number } {
    const c = this.config;
    const where = 'SanaTransformer2DModel.forward';
    const x = inputs.hiddenStates;
    if (x.rank !== 4) throw new Error(`${where}: hiddenStates must be [B, H, W, ${c.in_channels}] (NHWC), got shape [${x.shape}]`);
    const [b, hh, ww, ch] = x.shape;
    if (ch !== c.in_channels) throw new Error(`${where}: hiddenStates has ${ch} channels, config in_channels is ${c.in_channels} (NHWC layout expected: [B, H, W, C])`);
    if (hh % c.patch_size || ww % c.patch_size) {
      throw new Error(`${where}: latent size ${hh}x${ww} is not divisible by patch_size ${c.patch_size}`);
    }
    const e = inputs.encoderHiddenStates;
    if (e.rank !== 3) throw new Error(`${where}: encoderHiddenStates must be [B, L, ${c.caption_channels}], got shape [${e.shape}]`);
    if (e.shape[0] !== b) throw new Error(`${where}: encoderHiddenStates batch ${e.shape[0]} != hiddenStates batch ${b}`);
    if (e.shape[2] !== c.caption_channels) {
      throw new Error(`${where}: encoderHiddenStates width ${e.shape[2]} != config caption_channels ${c.caption_channels}`);
    }
    const m = inputs.encoderAttentionMask;
    if (m && (m.rank !== 2 || m.shape[0] !== b || m.shape[1] !== e.shape[1])) {
      throw new Error(`${where}: encoderAttentionMask must be [${b}, ${e.shape[1]}] (batch, text length), got shape [${m.shape}]`);
    }
    const t = inputs.timestep;
    if (t.rank !== 1 || t.shape[0] !== b) throw new Error(`${where}: timestep must be [${b}] (one per batch item), got shape [${t.shape}]`);
    const g = inputs.guidance;
    if (c.guidance_embeds && !g) throw new Error(`${where}: this model has guidance_embeds=true and needs a guidance tensor [${b}]`);
    if (!c.guidance_embeds && g) throw new Error(`${where}: guidance was given but the model has guidance_embeds=false`);
    if (g && (g.rank !== 1 || g.shape[0] !== b)) throw new Error(`${where}: guidance must be [${b}], got shape [${g.shape}]`);
    return { b, h: hh / c.patch_size, w: ww / c.patch_size };
  }
}

/** [B, L] 0/1 mask -> [B, 1, 1, L] additive logits bias, (1 - mask) * -10000 as in diffusers. */
export function maskToBias(mask: Tensor2D): Tensor4D {
  return tf.tidy(() => {
    const [b, l] = mask.shape;
    return tf.scalar(1).sub(mask.toFloat()).mul(MASKED_LOGIT_BIAS).reshape([b, 1, 1, l]) as Tensor4D;
  });
}

/** Every Linear and Conv2d in a module tree, keyed by module path: the layers adapters attach to. */
export function namedAdapterTargets(root: Module): Map<string, AdapterTarget> {
  const out = new Map<string, AdapterTarget>();
  for (const [path, m] of root.namedModules()) if (m instanceof Linear || m instanceof Conv2d) out.set(path, m);
  return out;
}
