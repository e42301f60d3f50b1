/**
 * Model sizes as overrides of the one config schema (`config.ts`). The Sana-0.6B and Sana-1.6B shapes
 * are those of the released diffusers checkpoints (`Efficient-Large-Model/Sana_600M_1024px_diffusers`,
 * `Sana_1600M_1024px_diffusers`: 1024 px images, 32x32 latents of the f32c32 DC-AE, Gemma-2-2B text).
 */
import { SANA_TRANSFORMER_DEFAULTS, SanaTransformerConfig, validateSanaTransformerConfig } from './config';

export interface SanaTransformerPreset {
  description: string;
  overrides: Partial<SanaTransformerConfig>;
}

export const SANA_TRANSFORMER_PRESETS: Readonly<Record<string, SanaTransformerPreset>> = Object.freeze({
  'sana-0.6b': {
    description: 'Sana-0.6B: 28 layers, width 1152 (36 heads x 32), cross-attention 16 heads x 72',
    overrides: {
      num_attention_heads: 36,
      attention_head_dim: 32,
      num_layers: 28,
      num_cross_attention_heads: 16,
      cross_attention_head_dim: 72,
      cross_attention_dim: 1152,
    },
  },
  'sana-1.6b': {
    description: 'Sana-1.6B: 20 layers, width 2240 (70 heads x 32), cross-attention 20 heads x 112',
    overrides: {
      num_attention_heads: 70,
      attention_head_dim: 32,
      num_layers: 20,
      num_cross_attention_heads: 20,
      cross_attention_head_dim: 112,
      cross_attention_dim: 2240,
    },
  },
  bench: {
    description: 'benchmark size: 4 layers, width 256 (8 heads x 32), cross-attention 8 heads x 32, 16x16 latents',
    overrides: {
      num_attention_heads: 8,
      attention_head_dim: 32,
      num_layers: 4,
      num_cross_attention_heads: 8,
      cross_attention_head_dim: 32,
      cross_attention_dim: 256,
      sample_size: 16,
    },
  },
  small: {
    description: 'small model for quick training runs: 6 layers, width 192 (6 heads x 32), cross-attention 6 heads x 32',
    overrides: {
      num_attention_heads: 6,
      attention_head_dim: 32,
      num_layers: 6,
      num_cross_attention_heads: 6,
      cross_attention_head_dim: 32,
      cross_attention_dim: 192,
      sample_size: 16,
    },
  },
  tiny: {
    description: 'test size: 2 layers, width 16 (2 heads x 8), 8 latent channels, 24-wide captions',
    overrides: {
      in_channels: 8,
      out_channels: 8,
      num_attention_heads: 2,
      attention_head_dim: 8,
      num_layers: 2,
      num_cross_attention_heads: 2,
      cross_attention_head_dim: 8,
      cross_attention_dim: 16,
      caption_channels: 24,
      sample_size: 8,
    },
  },
});

export function presetNames(): string[] {
  return Object.keys(SANA_TRANSFORMER_PRESETS);
}

/** The full config of a preset, with optional further overrides (validated). */
export function sanaTransformerPreset(name: string, overrides: Partial<SanaTransformerConfig> = {}): SanaTransformerConfig {
  const preset = SANA_TRANSFORMER_PRESETS[name.toLowerCase()];
  if (!preset) throw new Error(`unknown SanaTransformer2DModel preset "${name}" (expected one of ${presetNames().join(', ')})`);
  return validateSanaTransformerConfig({ ...SANA_TRANSFORMER_DEFAULTS, ...preset.overrides, ...overrides }, `preset "${name}"`);
}
