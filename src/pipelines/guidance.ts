/**
 * Classifier-free guidance: turns a text-conditioned SANA transformer into the `VelocityFn` a sampler
 * drives. Everything the sampler must not know lives here: the [uncond, cond] batch layout, the text
 * embeddings and masks, the timestep scale the model expects, and the guidance formula.
 *
 * Mirrors the denoising loop body of diffusers' `SanaPipeline.__call__` (pipelines/sana/pipeline_sana.py):
 * latents duplicated with the unconditional half FIRST, timestep = t * transformer.config.timestep_scale
 * (float32), v = v_uncond + s * (v_text - v_uncond), guidance only when s > 1, and the learned-sigma
 * half of the channels dropped when out_channels is twice the latent channels.
 */
import { tf, Tensor, Tensor2D, Tensor3D, Tensor4D } from '../backend';
import { SanaTransformerConfig, SanaTransformerInputs } from '../models/dit';
import { StepInfo, VelocityFn } from '../schedulers';

/** SANA's default guidance scale. */
export const DEFAULT_GUIDANCE_SCALE = 4.5;

/** What guidance needs from the transformer (`SanaTransformer2DModel` satisfies it). */
export interface GuidableTransformer {
  readonly config: Pick<SanaTransformerConfig, 'in_channels' | 'out_channels' | 'timestep_scale' | 'guidance_embeds'>;
  forward(inputs: SanaTransformerInputs): Tensor4D;
}

/** Text conditioning for a batch of B latents. Tensors are borrowed (not disposed here). */
export interface TextConditioning {
  /** [B, L, caption_channels] prompt embeddings. */
  embeds: Tensor3D;
  /** [B, L] 1 = token, 0 = padding. */
  mask: Tensor2D;
}

/** The model outputs of one step, for inspection (tensors are borrowed: clone to keep them). */
export interface GuidanceStep {
  step: StepInfo;
  /** Timesteps fed to the transformer (length 2B with guidance, B without). */
  modelTimesteps: Float32Array;
  /** [B, h, w, C] unconditional half (null without guidance). */
  uncond: Tensor | null;
  /** [B, h, w, C] text-conditioned half. */
  cond: Tensor;
  /** [B, h, w, C] the velocity handed to the sampler. */
  guided: Tensor;
}

export interface GuidanceOptions {
  /** s in v_uncond + s (v_text - v_uncond); guidance is applied only when s > 1. Default 4.5. */
  guidanceScale?: number;
  /** Called once per model evaluation. */
  onStep?: (s: GuidanceStep) => void;
}

/** Whether the reference applies classifier-free guidance at this scale (`guidance_scale > 1`). */
export function usesGuidance(guidanceScale: number): boolean {
  return guidanceScale > 1;
}

/** The timestep value the transformer receives: float32(t) * float32(timestep_scale), rounded to float32. */
export function modelTimestep(timestep: number, timestepScale: number): number {
  return Math.fround(Math.fround(timestep) * Math.fround(timestepScale));
}

function assertBatch(name: string, t: Tensor, batch: number, rank: number): void {
  if (t.rank !== rank || t.shape[0] !== batch) throw new Error(`guidance: ${name} must have rank ${rank} and batch ${batch}, got shape [${t.shape}]`);
}

/** A VelocityFn that holds the [uncond, cond] text batch until `dispose()`. */
export type GuidedVelocityFn = VelocityFn & { dispose(): void };

/**
 * A velocity function for the sampler. `cond` is required; `uncond` is required when the scale
 * uses guidance (s > 1) and ignored otherwise. Latents are NHWC [B, h, w, in_channels].
 */
export function guidedVelocity(transformer: GuidableTransformer, cond: TextConditioning, uncond: TextConditioning | null, opts: GuidanceOptions = {}): GuidedVelocityFn {
  const scale = opts.guidanceScale ?? DEFAULT_GUIDANCE_SCALE;
  if (!Number.isFinite(scale)) throw new Error(`guidance: guidance scale must be a finite number, got ${scale}`);
  const cfg = usesGuidance(scale);
  if (cfg && !uncond) throw new Error(`guidance: a guidance scale of ${scale} (> 1) needs unconditional (negative prompt) embeddings`);
  if (transformer.config.guidance_embeds) {
    throw new Error('guidance: this transformer embeds the guidance scale (guidance_embeds: true, SANA-Sprint); its sampler is not supported by this pipeline');
  }
  const batch = cond.embeds.shape[0];
  assertBatch('cond.mask', cond.mask, batch, 2);
  if (cfg && uncond) {
    assertBatch('uncond.embeds', uncond.embeds, batch, 3);
    assertBatch('uncond.mask', uncond.mask, batch, 2);
    if (uncond.embeds.shape[1] !== cond.embeds.shape[1] || uncond.embeds.shape[2] !== cond.embeds.shape[2]) {
      throw new Error(`guidance: negative embeddings [${uncond.embeds.shape}] and prompt embeddings [${cond.embeds.shape}] must have the same length and width`);
    }
  }
  const latentChannels = transformer.config.in_channels;
  const learnedSigma = Math.floor(transformer.config.out_channels / 2) === latentChannels;
  // The text side is the same at every step: concatenate [uncond, cond] once, keep it across steps.
  const text = cfg
    ? { embeds: tf.concat([uncond!.embeds, cond.embeds], 0) as Tensor3D, mask: tf.concat([uncond!.mask, cond.mask], 0) as Tensor2D }
    : { embeds: cond.embeds, mask: cond.mask };
  const velocity: VelocityFn = (x: Tensor, step: StepInfo) => {
    if (x.rank !== 4 || x.shape[0] !== batch || x.shape[3] !== latentChannels) {
      throw new Error(`guidance: latents must be NHWC [${batch}, h, w, ${latentChannels}], got shape [${x.shape}]`);
    }
    const n = cfg ? 2 * batch : batch;
    const modelTimesteps = new Float32Array(n).fill(modelTimestep(step.timestep, transformer.config.timestep_scale));
    return tf.tidy(() => {
      const input = (cfg ? tf.concat([x, x], 0) : x) as Tensor4D; // [n, h, w, C]
      let out: Tensor = transformer.forward({
        hiddenStates: input,
        encoderHiddenStates: text.embeds,
        encoderAttentionMask: text.mask,
        timestep: tf.tensor1d(modelTimesteps, 'float32'),
      }); // [n, h, w, C_out]
      let uncondOut: Tensor | null = null;
      let condOut = out;
      if (cfg) {
        [uncondOut, condOut] = tf.split(out, 2, 0);
        out = uncondOut.add(condOut.sub(uncondOut).mul(tf.scalar(scale, 'float32')));
      }
      // Learned sigma: the second half of the channels is a variance the flow sampler does not use.
      if (learnedSigma) {
        const first = (t: Tensor) => t.slice([0, 0, 0, 0], [-1, -1, -1, latentChannels]);
        out = first(out);
        condOut = first(condOut);
        uncondOut = uncondOut && first(uncondOut);
      }
      opts.onStep?.({ step, modelTimesteps, uncond: uncondOut, cond: condOut, guided: out });
      return out;
    });
  };
  return Object.assign(velocity, {
    /** Frees the concatenated text batch (call once sampling is done). */
    dispose: () => {
      if (cfg) tf.dispose([text.embeds, text.mask]);
    },
  });
}

