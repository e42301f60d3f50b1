/**
 * `sana info [--preset NAME | --config transformer/config.json]`: the transformer presets and their
 * parameter counts, computed from the config without allocating weights. Without options, one line per
 * preset.
 */
import { Command, Option } from 'commander';
import { withBackendOption } from '../common';
import { readSanaTransformerConfig } from '../../io/pretrained/transformer';
import { SANA_TRANSFORMER_PRESETS, SanaTransformerInfo, presetNames, sanaTransformerInfo, sanaTransformerPreset } from '../../models/dit';

export interface InfoCommandOptions {
  /** A preset name, or null. */
  preset: string | null;
  /** A diffusers transformer folder or its config.json, or null. */
  config: string | null;
}

/** Validates commander's raw options into the typed form. */
export function parseInfoOptions(raw: { preset?: string; config?: string }): InfoCommandOptions {
  if (raw.preset && raw.config) throw new Error('sana info: give either --preset or --config, not both');
  return { preset: raw.preset ?? null, config: raw.config ?? null };
}

function millions(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(3)}B` : `${(n / 1e6).toFixed(1)}M`;
}

/** The report for one model: total, size in float32, and counts per top-level module. */
export function formatTransformerInfo(title: string, info: SanaTransformerInfo): string[] {
  const c = info.config;
  const lines = [
    `${title}: SanaTransformer2DModel, ${c.num_layers} layers, width ${c.num_attention_heads * c.attention_head_dim} ` +
      `(${c.num_attention_heads} heads x ${c.attention_head_dim}), cross-attention ${c.num_cross_attention_heads} x ${c.cross_attention_head_dim}, ` +
      `patch ${c.patch_size}, ${c.in_channels} latent channels, captions ${c.caption_channels} wide`,
    `  parameters        ${info.total.toLocaleString('en-US')} (${millions(info.total)}), ${(info.float32Bytes / 1024 ** 3).toFixed(2)} GiB in float32`,
  ];
  for (const g of info.groups) {
    const detail = g.name === 'transformer_blocks' ? ` (${c.num_layers} x ${info.perBlock.toLocaleString('en-US')})` : '';
    lines.push(`  ${g.name.padEnd(18)}${g.count.toLocaleString('en-US')}${detail}`);
  }
  return lines;
}

/** The lines `sana info` prints for the options. */
export function infoLines(opts: InfoCommandOptions): string[] {
  if (opts.config) return formatTransformerInfo(opts.config, sanaTransformerInfo(readSanaTransformerConfig(opts.config)));
  if (opts.preset) return formatTransformerInfo(`preset ${opts.preset}`, sanaTransformerInfo(sanaTransformerPreset(opts.preset)));
  return presetNames().map((name) => {
    const info = sanaTransformerInfo(sanaTransformerPreset(name));
    return `${name.padEnd(10)} ${millions(info.total).padStart(8)}  ${SANA_TRANSFORMER_PRESETS[name].description}`;
  });
}

export function registerInfo(program: Command): void {
  withBackendOption(
    program
      .command('info')
      .description('model presets and parameter counts (computed from the config; no weights are allocated)')
      .addOption(new Option('--preset <name>', `transformer preset (${presetNames().join(', ')})`))
      .addOption(new Option('--config <path>', 'a diffusers transformer folder or its config.json')),
  ).action(async (raw: { preset?: string; config?: string }) => {
    for (const line of infoLines(parseInfoOptions(raw))) console.log(line);
  });
}
