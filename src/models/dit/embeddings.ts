/**
 * Input embeddings of the SANA transformer, mirroring diffusers `models/embeddings.py`
 * (`get_timestep_embedding`, `Timesteps`, `TimestepEmbedding`, `PixArtAlphaCombinedTimestepSizeEmbeddings`,
 * `PixArtAlphaTextProjection`, `PatchEmbed`, `get_2d_sincos_pos_embed`), `models/normalization.py`
 * (`AdaLayerNormSingle`) and `sana_transformer.py` (`SanaCombinedTimestepGuidanceEmbeddings`).
 * Parameter names are diffusers' (`time_embed.emb.timestep_embedder.linear_1.weight`, ...).
 * Constants (sinusoid frequencies, position tables) are cached as host arrays and uploaded per call.
 */
import { tf, Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../../backend';
import { Conv2d, Linear, Module, geluTanh, silu, torchDefault } from '../../nn';
import { smallNormalLinear, xavierBound } from './init';

/** Channels of the sinusoidal timestep features (diffusers' `Timesteps(num_channels=256)`). */
export const TIMESTEP_CHANNELS = 256;
const MAX_PERIOD = 10000;

const frequencyCache = new Map<number, Float32Array>();

/**
 * exp(-ln(10000) * i / half) for i < half, rounded to float32 at each step as PyTorch computes it in
 * float32 (downscale_freq_shift = 0).
 */
function timestepFrequencies(channels: number): Float32Array {
  let f = frequencyCache.get(channels);
  if (!f) {
    const half = Math.floor(channels / 2);
    f = new Float32Array(half);
    const c = Math.fround(-Math.log(MAX_PERIOD));
    for (let i = 0; i < half; i++) f[i] = Math.exp(Math.fround(Math.fround(c * i) / half));
    frequencyCache.set(channels, f);
  }
  return f;
}

/**
 * Sinusoidal timestep features with cos first (`flip_sin_to_cos=True`, `downscale_freq_shift=0`).
 * @param t [B] timesteps (any real values: SANA passes sigma * 1000, SANA-Sprint values in [0, 1])
 * @returns [B, channels]
 */
export function timestepSinusoid(t: Tensor1D, channels = TIMESTEP_CHANNELS): Tensor2D {
  return tf.tidy(() => {
    const freqs = tf.tensor2d(timestepFrequencies(channels), [1, Math.floor(channels / 2)]);
    const args = t.toFloat().reshape([-1, 1]).mul(freqs); // [B, half]
    let emb = tf.concat([args.cos(), args.sin()], 1);
    if (channels % 2 === 1) emb = emb.pad([[0, 0], [0, 1]]);
    return emb as Tensor2D;
  });
}

/** diffusers `TimestepEmbedding`: Linear -> SiLU -> Linear, 256 -> D -> D. */
export class TimestepEmbedding extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;

  constructor(dim: number, inChannels = TIMESTEP_CHANNELS) {
    super();
    this.linear_1 = this.module('linear_1', new Linear(inChannels, dim, smallNormalLinear));
    this.linear_2 = this.module('linear_2', new Linear(dim, dim, smallNormalLinear));
  }

  /** [B, 256] -> [B, D]. */
  forward(x: Tensor): Tensor2D {
    return tf.tidy(() => this.linear_2.forward(silu(this.linear_1.forward(x))) as Tensor2D);
  }
}

/** The two outputs of the time embedding. */
export interface TimeEmbedding {
  /** [B, 6 * D]: shift/scale/gate for attention and feed-forward, shared by every block. */
  modulation: Tensor2D;
  /** [B, D]: the conditioning vector itself, used by the final modulated norm. */
  embedded: Tensor2D;
}

/** `PixArtAlphaCombinedTimestepSizeEmbeddings` without size conditions: holds `timestep_embedder`. */
class CombinedTimestepEmbedding extends Module {
  readonly timestep_embedder: TimestepEmbedding;
  constructor(dim: number) {
    super();
    this.timestep_embedder = this.module('timestep_embedder', new TimestepEmbedding(dim));
  }
}

/**
 * diffusers `AdaLayerNormSingle` (adaLN-single of PixArt-alpha): keys `time_embed.emb.timestep_embedder.*`
 * and `time_embed.linear.*`.
 */
export class AdaLayerNormSingle extends Module {
  readonly emb: CombinedTimestepEmbedding;
  readonly linear: Linear;

  constructor(readonly dim: number) {
    super();
    this.emb = this.module('emb', new CombinedTimestepEmbedding(dim));
    this.linear = this.module('linear', new Linear(dim, 6 * dim, smallNormalLinear));
  }

  /** t: [B] -> modulation [B, 6D] and embedded timestep [B, D]. */
  forward(t: Tensor1D): TimeEmbedding {
    return tf.tidy(() => {
      const embedded = this.emb.timestep_embedder.forward(timestepSinusoid(t));
      const modulation = this.linear.forward(silu(embedded)) as Tensor2D;
      return { modulation, embedded };
    });
  }
}

/**
 * diffusers `SanaCombinedTimestepGuidanceEmbeddings` (SANA-Sprint): timestep and guidance scale each
 * embedded like a timestep and summed; keys `time_embed.{timestep_embedder,guidance_embedder,linear}`.
 */
export class SanaCombinedTimestepGuidanceEmbeddings extends Module {
  readonly timestep_embedder: TimestepEmbedding;
  readonly guidance_embedder: TimestepEmbedding;
  readonly linear: Linear;

  constructor(readonly dim: number) {
    super();
    this.timestep_embedder = this.module('timestep_embedder', new TimestepEmbedding(dim));
    this.guidance_embedder = this.module('guidance_embedder', new TimestepEmbedding(dim));
    this.linear = this.module('linear', new Linear(dim, 6 * dim, smallNormalLinear));
  }

  /** t, guidance: [B] -> modulation [B, 6D] and conditioning [B, D]. */
  forward(t: Tensor1D, guidance: Tensor1D): TimeEmbedding {
    return tf.tidy(() => {
      const tEmb = this.timestep_embedder.forward(timestepSinusoid(t));
      const embedded = tEmb.add(this.guidance_embedder.forward(timestepSinusoid(guidance))) as Tensor2D;
      const modulation = this.linear.forward(silu(embedded)) as Tensor2D;
      return { modulation, embedded };
    });
  }
}

/** diffusers `PixArtAlphaTextProjection`: Linear -> GELU(tanh) -> Linear, caption_channels -> D -> D. */
export class CaptionProjection extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;

  constructor(inFeatures: number, dim: number) {
    super();
    this.linear_1 = this.module('linear_1', new Linear(inFeatures, dim, smallNormalLinear));
    this.linear_2 = this.module('linear_2', new Linear(dim, dim, smallNormalLinear));
  }

  /** [B, L, caption_channels] -> [B, L, D]. */
  forward(x: Tensor3D): Tensor3D {
    return tf.tidy(() => this.linear_2.forward(geluTanh(this.linear_1.forward(x))) as Tensor3D);
  }
}

const posEmbedCache = new Map<string, Float32Array>();

/**
 * 2D sin-cos position table as diffusers' `get_2d_sincos_pos_embed` builds it for a (h, w) token grid:
 * per axis positions arange(n) / (n / baseSize) / interpolationScale; the first dim/2 channels encode
 * the column (w) position, the last dim/2 the row (h) position, each as [sin | cos] over dim/4
 * frequencies 1 / 10000^(k / (dim/4)). Tokens in row-major (h, w) order.
 * @returns host array [h * w, dim]
 */
export function sincosPosEmbed2d(dim: number, h: number, w: number, baseSize: number, interpolationScale: number): Float32Array {
  const key = `${dim}/${h}/${w}/${baseSize}/${interpolationScale}`;
  const hit = posEmbedCache.get(key);
  if (hit) return hit;
  if (dim % 4 !== 0) throw new Error(`sin-cos position embedding needs a width divisible by 4, got ${dim}`);
  // Grid positions are float32 in the reference (arange / float / float).
  const axis = (n: number) => Array.from({ length: n }, (_, i) => Math.fround(Math.fround(i / Math.fround(n / baseSize)) / interpolationScale));
  const gh = axis(h);
  const gw = axis(w);
  const quarter = dim / 4;
  const omega = Array.from({ length: quarter }, (_, k) => 1 / Math.pow(10000, k / quarter));
  const out = new Float32Array(h * w * dim);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const row = (i * w + j) * dim;
      for (let k = 0; k < quarter; k++) {
        const aw = gw[j] * omega[k];
        const ah = gh[i] * omega[k];
        out[row + k] = Math.sin(aw);
        out[row + quarter + k] = Math.cos(aw);
        out[row + 2 * quarter + k] = Math.sin(ah);
        out[row + 3 * quarter + k] = Math.cos(ah);
      }
    }
  }
  posEmbedCache.set(key, out);
  return out;
}

/**
 * diffusers `PatchEmbed` as SANA configures it: a p x p stride-p convolution (`proj`) to the model
 * width, tokens flattened in row-major order, plus the sin-cos table when `interpolation_scale` is set
 * (recomputed for latents whose grid differs from sample_size / p, as diffusers does).
 */
export class PatchEmbed extends Module {
  readonly proj: Conv2d;
  /** Grid side the model was trained at (`sample_size // patch_size`): the position table's base. */
  readonly baseSize: number;

  constructor(
    inChannels: number,
    readonly dim: number,
    readonly patchSize: number,
    sampleSize: number,
    readonly interpolationScale: number | null,
  ) {
    super();
    const fanIn = inChannels * patchSize * patchSize;
    this.proj = this.module(
      'proj',
      new Conv2d(inChannels, dim, patchSize, { stride: patchSize, weightInit: xavierBound(fanIn, dim), biasInit: torchDefault(fanIn) }),
    );
    this.baseSize = Math.floor(sampleSize / patchSize);
  }

  /** x: [B, H, W, C] (H, W divisible by p) -> tokens [B, (H/p)*(W/p), D]. */
  forward(x: Tensor4D): Tensor3D {
    return tf.tidy(() => {
      const [b, hh, ww] = x.shape;
      const h = hh / this.patchSize;
      const w = ww / this.patchSize;
      let tokens = this.proj.forward(x).reshape([b, h * w, this.dim]) as Tensor3D;
      if (this.interpolationScale !== null) {
        const table = sincosPosEmbed2d(this.dim, h, w, this.baseSize, this.interpolationScale);
        tokens = tokens.add(tf.tensor3d(table, [1, h * w, this.dim]));
      }
      return tokens;
    });
  }
}

