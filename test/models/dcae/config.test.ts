import * as path from 'path';
import { readJsonFile } from '../../../src/io/json';
import {
  AutoencoderDC,
  DC_AE_F32C32_SANA_1_0_NUM_PARAMETERS,
  autoencoderDCPreset,
  parseAutoencoderDCConfig,
} from '../../../src/models/dcae';
import { infoLines, parseInfoOptions } from '../../../src/cli/commands/info';
import { GOLDEN_DIR } from '../../helpers';

const goldenConfig = () => readJsonFile(path.join(GOLDEN_DIR, 'dc_ae_tiny', 'config.json')) as Record<string, unknown>;

describe('parseAutoencoderDCConfig', () => {
  test('reads a diffusers config.json and expands per-stage strings', () => {
    const c = parseAutoencoderDCConfig(goldenConfig(), 'vae/config.json');
    expect(c.latent_channels).toBe(8);
    expect(c.decoder_norm_types).toEqual(['rms_norm', 'rms_norm', 'rms_norm', 'rms_norm', 'rms_norm', 'rms_norm']);
    expect(c.decoder_act_fns).toHaveLength(6);
    expect(c.downsample_block_type).toBe('conv');
    expect(c.upsample_block_type).toBe('interpolate');
    expect(c.scaling_factor).toBeCloseTo(0.41407, 10);
  });

  test('is idempotent (a validated config parses to itself)', () => {
    const c = parseAutoencoderDCConfig(goldenConfig());
    expect(parseAutoencoderDCConfig(c as unknown as Record<string, unknown>)).toEqual(c);
  });

  test('fills missing keys with the reference defaults', () => {
    const c = parseAutoencoderDCConfig({});
    expect(c.latent_channels).toBe(32);
    expect(c.encoder_layers_per_block).toEqual([2, 2, 2, 3, 3, 3]);
    expect(c.downsample_block_type).toBe('pixel_unshuffle');
    expect(c.upsample_block_type).toBe('pixel_shuffle');
    expect(c.scaling_factor).toBe(1);
  });

  test('accepts the hub spelling "Conv" for strided-conv down-sampling', () => {
    expect(parseAutoencoderDCConfig({ downsample_block_type: 'Conv' }).downsample_block_type).toBe('conv');
  });

  test.each([
    [{ latent_chanels: 8 }, /vae\/config.json: latent_chanels: unknown key/],
    [{ latent_channels: 0 }, /latent_channels: expected a positive integer, got 0/],
    [{ encoder_layers_per_block: [1, 1] }, /encoder_layers_per_block: expected 6 entries/],
    [{ decoder_block_out_channels: [4, 8] }, /decoder_block_out_channels: expected 6 entries/],
    [{ decoder_norm_types: 'group_norm' }, /decoder_norm_types: expected one of rms_norm, layer_norm, batch_norm/],
    [{ encoder_block_types: ['ResBlock'] }, /encoder_block_types: expected one of ResBlock, EfficientViTBlock, or a list of 6/],
    [{ encoder_qkv_multiscales: [[], [], [], [4], [5], [5]] }, /encoder_qkv_multiscales: expected a list of 6 lists of odd kernel sizes/],
    [{ downsample_block_type: 'avgpool' }, /downsample_block_type: expected "conv" or "pixel_unshuffle"/],
    [{ decoder_conv_act_fn: 'tanhh' }, /decoder_conv_act_fn: expected one of/],
    [{ latent_channels: 12 }, /encoder_out_shortcut: last encoder width 32 must be a multiple of latent_channels 12/],
    [{ attention_head_dim: 64 }, /attention_head_dim: 64 is wider than encoder stage 3 \(16 channels\)/],
    [{ _class_name: 'AutoencoderKL' }, /_class_name: expected "AutoencoderDC"/],
  ])('rejects %j with an error naming the file and field', (patch, message) => {
    expect(() => parseAutoencoderDCConfig({ ...goldenConfig(), ...patch }, 'vae/config.json')).toThrow(message);
  });
});

describe('f32c32-sana-1.0 preset', () => {
  test('has the real stage layout, scaling factor and parameter count (nothing allocated)', () => {
    const c = autoencoderDCPreset('f32c32-sana-1.0');
    expect(c.encoder_block_out_channels).toEqual([128, 256, 512, 512, 1024, 1024]);
    expect(c.encoder_layers_per_block).toEqual([2, 2, 2, 3, 3, 3]);
    expect(c.decoder_layers_per_block).toEqual([3, 3, 3, 3, 3, 3]);
    expect(c.scaling_factor).toBe(0.41407);
    const model = new AutoencoderDC(c);
    expect(model.spatialCompressionRatio).toBe(32);
    expect(model.latentChannels).toBe(32);
    expect(model.numParameters()).toBe(DC_AE_F32C32_SANA_1_0_NUM_PARAMETERS);
    expect(model.encoder.numParameters()).toBe(153_027_104);
    expect(model.parameters().every((p) => !p.isMaterialized)).toBe(true);
  });

  test('unknown presets list the known ones', () => {
    expect(() => autoencoderDCPreset('f64c128')).toThrow(/unknown preset; expected one of f32c32-sana-1.0/);
  });
});

describe('sana info', () => {
  test('lists the autoencoder preset next to the transformer presets', () => {
    const lines = infoLines(parseInfoOptions({}));
    expect(lines).toContain('autoencoder presets:');
    expect(lines.find((l) => l.startsWith('f32c32-sana-1.0'))).toMatch(/312\.3M/);
    expect(lines.some((l) => l.startsWith('sana-1.6b'))).toBe(true);
  });

  test('--preset f32c32-sana-1.0 prints the exact count and the encoder/decoder split', () => {
    const text = infoLines(parseInfoOptions({ preset: 'f32c32-sana-1.0' })).join('\n');
    expect(text).toMatch(/f32c32 \(32x down-sampling, 32 latent channels\)/);
    expect(text).toMatch(/parameters +312,250,275/);
    expect(text).toMatch(/encoder +153,027,104/);
    expect(text).toMatch(/decoder +159,223,171/);
  });

  test('--config on a vae folder reads its config.json', () => {
    const text = infoLines(parseInfoOptions({ config: path.join(GOLDEN_DIR, 'dc_ae_tiny') })).join('\n');
    expect(text).toMatch(/AutoencoderDC, f32c8/);
    expect(text).toMatch(/parameters +270,251/);
  });
});
