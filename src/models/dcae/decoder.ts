/**
 * DC-AE decoder, mirroring `Decoder` of diffusers' `models/autoencoders/autoencoder_dc.py` (same
 * parameter names: `conv_in`, `up_blocks.<stage>.<layer>`, `norm_out`, `conv_out`). Stages are stored
 * in encoder order and run from the last to the first. NHWC in and out.
 */
import { tf, Tensor, Tensor4D } from '../../backend';
import { Conv2d, Module } from '../../nn';
import { dcaeActivation, makeBlock, DCUpBlock2d } from './blocks';
import { AutoencoderDCConfig } from './config';
import { Block2d, RMSNorm2d, Sequential2d } from './norms';
import { repeatChannels } from './ops';

export class Decoder extends Module {
  readonly conv_in: Conv2d;
  readonly up_blocks: Sequential2d[];
  readonly norm_out: RMSNorm2d;
  readonly conv_out: Block2d;
  private readonly convAct: (x: Tensor) => Tensor;
  /** Times each latent channel is repeated by the input shortcut (0 when the shortcut is off). */
  private readonly inShortcutRepeats: number;

  constructor(c: AutoencoderDCConfig) {
    super();
    const widths = c.decoder_block_out_channels;
    const layers = c.decoder_layers_per_block;
    const n = widths.length;
    const interpolate = c.upsample_block_type === 'interpolate';
    // 1. Projection from the latent, plus the channel-repeating shortcut.
    this.conv_in = this.module('conv_in', new Conv2d(c.latent_channels, widths[n - 1], 3, { padding: 1 }));
    this.inShortcutRepeats = c.decoder_in_shortcut ? widths[n - 1] / c.latent_channels : 0;
    // 2. Stages (built last to first): 2x up-sampling from the deeper width (not for the last stage), then layers.
    const stages: Sequential2d[] = new Array(n);
    for (let i = n - 1; i >= 0; i--) {
      const blocks: Block2d[] = [];
      if (i < n - 1 && layers[i] > 0) blocks.push(new DCUpBlock2d(widths[i + 1], widths[i], interpolate, true));
      for (let l = 0; l < layers[i]; l++) {
        blocks.push(
          makeBlock({
            type: c.decoder_block_types[i],
            channels: widths[i],
            attentionHeadDim: c.attention_head_dim,
            normType: c.decoder_norm_types[i],
            actFn: c.decoder_act_fns[i],
            qkvMultiscales: c.decoder_qkv_multiscales[i],
          }),
        );
      }
      stages[i] = new Sequential2d(blocks);
    }
    this.up_blocks = this.moduleList('up_blocks', stages);
    // 3. Head: RMSNorm, activation, 3x3 conv to pixels (or, first stage empty, a shortcut-free up-sampling block).
    const headChannels = layers[0] > 0 ? widths[0] : widths[1];
    this.norm_out = this.module('norm_out', new RMSNorm2d(headChannels));
    this.convAct = dcaeActivation(c.decoder_conv_act_fn);
    this.conv_out = this.module(
      'conv_out',
      layers[0] > 0 ? new Conv2d(headChannels, c.in_channels, 3, { padding: 1 }) : new DCUpBlock2d(headChannels, c.in_channels, interpolate, false),
    );
  }

  /**
   * latent [B, h, w, latent_channels] -> images [B, h*r, w*r, in_channels].
   * With `stageOutputs`, each stage's output is stored at its stage index (kept; the caller disposes them).
   */
  forward(z: Tensor4D, stageOutputs?: Tensor4D[]): Tensor4D {
    return tf.tidy(() => {
      let h = this.conv_in.forward(z);
      if (this.inShortcutRepeats) h = h.add(repeatChannels(z, this.inShortcutRepeats)) as Tensor4D;
      for (let i = this.up_blocks.length - 1; i >= 0; i--) {
        h = this.up_blocks[i].forward(h);
        if (stageOutputs) stageOutputs[i] = tf.keep(h.clone());
      }
      return this.conv_out.forward(this.convAct(this.norm_out.forward(h)) as Tensor4D);
    });
  }
}
