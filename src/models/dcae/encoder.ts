/**
 * DC-AE encoder, mirroring `Encoder` of diffusers' `models/autoencoders/autoencoder_dc.py` (same
 * parameter names: `conv_in`, `down_blocks.<stage>.<layer>`, `conv_out`). NHWC in and out.
 */
import { tf, Tensor4D } from '../../backend';
import { Conv2d, Module } from '../../nn';
import { makeBlock, DCDownBlock2d } from './blocks';
import { AutoencoderDCConfig } from './config';
import { Block2d, Sequential2d } from './norms';
import { channelGroupMean } from './ops';

export class Encoder extends Module {
  readonly conv_in: Block2d;
  readonly down_blocks: Sequential2d[];
  readonly conv_out: Conv2d;
  /** Channels averaged per latent channel by the output shortcut (0 when the shortcut is off). */
  private readonly outShortcutGroup: number;

  constructor(c: AutoencoderDCConfig) {
    super();
    const widths = c.encoder_block_out_channels;
    const layers = c.encoder_layers_per_block;
    const n = widths.length;
    const pixelUnshuffle = c.downsample_block_type === 'pixel_unshuffle';
    // 1. Stem: a 3x3 conv, or (first stage empty) a shortcut-free down-sampling block to stage 1's width.
    this.conv_in = this.module(
      'conv_in',
      layers[0] > 0 ? new Conv2d(c.in_channels, widths[0], 3, { padding: 1 }) : new DCDownBlock2d(c.in_channels, widths[1], pixelUnshuffle, false),
    );
    // 2. Stages: layers at constant width, then 2x down-sampling to the next width (not after the last).
    const stages: Sequential2d[] = [];
    for (let i = 0; i < n; i++) {
      const blocks: Block2d[] = [];
      for (let l = 0; l < layers[i]; l++) {
        blocks.push(
          makeBlock({
            type: c.encoder_block_types[i],
            channels: widths[i],
            attentionHeadDim: c.attention_head_dim,
            // The reference hard-codes these for the encoder.
            normType: 'rms_norm',
            actFn: 'silu',
            qkvMultiscales: c.encoder_qkv_multiscales[i],
          }),
        );
      }
      if (i < n - 1 && layers[i] > 0) blocks.push(new DCDownBlock2d(widths[i], widths[i + 1], pixelUnshuffle, true));
      stages.push(new Sequential2d(blocks));
    }
    this.down_blocks = this.moduleList('down_blocks', stages);
    // 3. Projection to the latent, plus the channel-averaging shortcut.
    this.conv_out = this.module('conv_out', new Conv2d(widths[n - 1], c.latent_channels, 3, { padding: 1 }));
    this.outShortcutGroup = c.encoder_out_shortcut ? widths[n - 1] / c.latent_channels : 0;
  }

  /**
   * images [B, H, W, in_channels] -> latent [B, H/r, W/r, latent_channels] (raw, no scaling factor).
   * With `stageOutputs`, each stage's output is appended to it (kept; the caller disposes them).
   */
  forward(x: Tensor4D, stageOutputs?: Tensor4D[]): Tensor4D {
    return tf.tidy(() => {
      let h = this.conv_in.forward(x);
      for (const stage of this.down_blocks) {
        h = stage.forward(h);
        if (stageOutputs) stageOutputs.push(tf.keep(h.clone()));
      }
      const z = this.conv_out.forward(h);
      return this.outShortcutGroup ? (z.add(channelGroupMean(h, this.outShortcutGroup)) as Tensor4D) : z;
    });
  }
}
