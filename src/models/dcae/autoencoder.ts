/**
 * `AutoencoderDC` (DC-AE, "deep compression autoencoder"), mirroring diffusers'
 * `models/autoencoders/autoencoder_dc.py`: same config keys, same parameter names and layouts, so a
 * diffusers `vae/` folder loads key for key (see `io/pretrained/autoencoder.ts`).
 *
 * The API edge is NHWC (`[B, H, W, C]`), unlike the reference's NCHW; use `nchwToNhwc` / `nhwcToNchw`
 * from `./ops` to convert. Images are float32 in [-1, 1]. Latents are RAW encoder outputs: the
 * pipeline multiplies by `scaling_factor` after encoding and divides before decoding; the model never
 * applies it.
 */
import { tf, Tensor4D } from '../../backend';
import { Module } from '../../nn';
import { AutoencoderDCConfig, parseAutoencoderDCConfig } from './config';
import { Decoder } from './decoder';
import { Encoder } from './encoder';
import { TilingOptions, decodeNeedsTiling, encodeNeedsTiling, resolveTiling, tiledDecode, tiledEncode } from './tiling';

export class AutoencoderDC extends Module {
  readonly config: AutoencoderDCConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  /** Image pixels per latent pixel along each axis: 2^(stages - 1) (32 for f32c32). */
  readonly spatialCompressionRatio: number;

  /**
   * @param config a `vae/config.json` object (validated here; unknown keys and bad values throw) or an
   *   already validated config.
   */
  constructor(config: AutoencoderDCConfig | Record<string, unknown>) {
    super();
    // Parsing is idempotent, so validated configs pass through unchanged.
    this.config = parseAutoencoderDCConfig(config as Record<string, unknown>);
    this.encoder = this.module('encoder', new Encoder(this.config));
    this.decoder = this.module('decoder', new Decoder(this.config));
    this.spatialCompressionRatio = 2 ** (this.config.encoder_block_out_channels.length - 1);
  }

  /** Channels of the latent (32 for f32c32). */
  get latentChannels(): number {
    return this.config.latent_channels;
  }

  /** `config.scaling_factor`: latents * scalingFactor have roughly unit variance (0.41407 for f32c32-sana-1.0). */
  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  /** images [B, H, W, in_channels] in [-1, 1], H and W multiples of the compression ratio -> raw latent [B, H/r, W/r, latent_channels]. */
  encode(images: Tensor4D): Tensor4D {
    this.checkInput(images, 'encode', 'images', this.config.in_channels, true);
    return this.encoder.forward(images);
  }

  /** raw latent [B, h, w, latent_channels] -> images [B, h*r, w*r, in_channels] (roughly in [-1, 1]). */
  decode(latents: Tensor4D): Tensor4D {
    this.checkInput(latents, 'decode', 'latents', this.config.latent_channels, false);
    return this.decoder.forward(latents);
  }

  /**
   * `encode` over overlapping tiles with blending, exactly as diffusers with `enable_tiling(...)`:
   * images no larger than one tile are encoded whole. Sizes need not be multiples of the ratio here
   * (edge tiles are zero-padded and the latent is floor(H/r) x floor(W/r)), as in the reference.
   */
  encodeTiled(images: Tensor4D, tiling?: TilingOptions): Tensor4D {
    const g = resolveTiling(tiling, this.spatialCompressionRatio);
    const tiled = encodeNeedsTiling(images.shape, g);
    this.checkInput(images, 'encodeTiled', 'images', this.config.in_channels, !tiled);
    if (!tiled) return this.encoder.forward(images);
    return tiledEncode(images, (t) => this.encoder.forward(t), g);
  }

  /** `decode` over overlapping latent tiles with blending, exactly as diffusers with `enable_tiling(...)`. */
  decodeTiled(latents: Tensor4D, tiling?: TilingOptions): Tensor4D {
    const g = resolveTiling(tiling, this.spatialCompressionRatio);
    this.checkInput(latents, 'decodeTiled', 'latents', this.config.latent_channels, false);
    if (!decodeNeedsTiling(latents.shape, g)) return this.decoder.forward(latents);
    return tiledDecode(latents, (t) => this.decoder.forward(t), g);
  }

  /** Shape, dtype and finiteness checks with errors that say what was expected. */
  private checkInput(x: Tensor4D, method: string, what: string, channels: number, divisible: boolean): void {
    const where = `AutoencoderDC.${method}`;
    if (x.rank !== 4) throw new Error(`${where}: ${what} must be NHWC [B, H, W, ${channels}], got shape [${x.shape}]`);
    if (x.dtype !== 'float32') throw new Error(`${where}: ${what} must be float32, got ${x.dtype}`);
    const [, h, w, c] = x.shape;
    if (c !== channels) {
      const hint = x.shape[1] === channels ? ' (is it NCHW? the API edge is NHWC: use nchwToNhwc)' : '';
      throw new Error(`${where}: ${what} must have ${channels} channels on the last axis (NHWC), got shape [${x.shape}]${hint}`);
    }
    if (h === 0 || w === 0 || x.shape[0] === 0) throw new Error(`${where}: ${what} is empty (shape [${x.shape}])`);
    const r = this.spatialCompressionRatio;
    if (divisible && (h % r || w % r)) {
      throw new Error(`${where}: ${what} height and width must be multiples of the compression ratio ${r}, got ${h}x${w}`);
    }
    const nonFinite = tf.tidy(() => tf.logicalNot(tf.isFinite(x)).any().dataSync()[0]);
    if (nonFinite) throw new Error(`${where}: ${what} contain NaN or infinite values`);
  }
}
