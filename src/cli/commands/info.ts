/**
 * `sana info [--preset NAME | --config transformer/config.json | --config vae/config.json]`: the
 * transformer and autoencoder presets and their parameter counts, computed from the config without
 * allocating weights. Without options, one line per preset.
 */
import { Command, Option } from 'commander';
import { startBackend, withBackendOption } from '../common';
import * as fs from 'fs';
import * as path from 'path';
import { readJsonFile } from '../../io/json';
import { readSanaTransformerConfig } from '../../io/pretrained/transformer';
import { readAutoencoderDCConfig } from '../../io/pretrained/autoencoder';
import { AUTOENCODER_DC_PRESETS, AutoencoderDC, AutoencoderDCConfig, autoencoderDCPreset } from '../../models/dcae';
import { SANA_TRANSFORMER_PRESETS, SanaTransformerInfo, presetNames, sanaTransformerInfo, sanaTransformerPreset } from '../../models/dit';

export interface InfoCommandOptions {
  /** A transformer or autoencoder preset name, or null. */
  preset: string | null;
  /** A diffusers transformer or vae folder, or its config.json, or null. */
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
    `  ${'parameters'.padEnd(20)}${info.total.toLocaleString('en-US')} (${millions(info.total)}), ${(info.float32Bytes / 1024 ** 3).toFixed(2)} GiB in float32`,
  ];
  for (const g of info.groups) {
    const detail = g.name === 'transformer_blocks' ? ` (${c.num_layers} x ${info.perBlock.toLocaleString('en-US')})` : '';
    lines.push(`  ${g.name.padEnd(20)}${g.count.toLocaleString('en-US')}${detail}`);
  }
  return lines;
}

/** The report for an autoencoder: stage layout, totals and the encoder/decoder split (nothing allocated). */
export function formatAutoencoderInfo(title: string, config: AutoencoderDCConfig): string[] {
  const model = new AutoencoderDC(config);
  const total = model.numParameters();
  const r = model.spatialCompressionRatio;
  return [
    `${title}: AutoencoderDC, f${r}c${config.latent_channels} (${r}x down-sampling, ${config.latent_channels} latent channels), ` +
      `widths ${config.encoder_block_out_channels.join(',')}, encoder layers ${config.encoder_layers_per_block.join(',')}, ` +
      `decoder layers ${config.decoder_layers_per_block.join(',')}, scaling_factor ${config.scaling_factor}`,
    `  parameters        ${total.toLocaleString('en-US')} (${millions(total)}), ${((total * 4) / 1024 ** 3).toFixed(2)} GiB in float32`,
    `  encoder           ${model.encoder.numParameters().toLocaleString('en-US')}`,
    `  decoder           ${model.decoder.numParameters().toLocaleString('en-US')}`,
  ];
}

/** True when a folder's (or file's) config.json names AutoencoderDC. */
function isAutoencoderConfig(dirOrFile: string): boolean {
  const file = fs.existsSync(dirOrFile) && fs.statSync(dirOrFile).isDirectory() ? path.join(dirOrFile, 'config.json') : dirOrFile;
  if (!fs.existsSync(file)) return false;
  const raw = readJsonFile(file) as Record<string, unknown>;
  return raw !== null && typeof raw === 'object' && raw._class_name === 'AutoencoderDC';
}

/** The lines `sana info` prints for the options. */
export function infoLines(opts: InfoCommandOptions): string[] {
  if (opts.config) {
    if (isAutoencoderConfig(opts.config)) return formatAutoencoderInfo(opts.config, readAutoencoderDCConfig(opts.config));
    return formatTransformerInfo(opts.config, sanaTransformerInfo(readSanaTransformerConfig(opts.config)));
  }
  if (opts.preset && opts.preset in AUTOENCODER_DC_PRESETS) return formatAutoencoderInfo(`preset ${opts.preset}`, autoencoderDCPreset(opts.preset));
  if (opts.preset) return formatTransformerInfo(`preset ${opts.preset}`, sanaTransformerInfo(sanaTransformerPreset(opts.preset)));
  const transformers = presetNames().map((name) => {
    const info = sanaTransformerInfo(sanaTransformerPreset(name));
    return `${name.padEnd(16)} ${millions(info.total).padStart(8)}  ${SANA_TRANSFORMER_PRESETS[name].description}`;
  });
  const autoencoders = Object.keys(AUTOENCODER_DC_PRESETS).map((name) => {
    const total = new AutoencoderDC(autoencoderDCPreset(name)).numParameters();
    return `${name.padEnd(16)} ${millions(total).padStart(8)}  AutoencoderDC (DC-AE) of SANA 1.0/1.5: 32x down-sampling, 32 latent channels`;
  });
  return ['transformer presets:', ...transformers, 'autoencoder presets:', ...autoencoders];
}

export function registerInfo(program: Command): void {
  withBackendOption(
    program
      .command('info')
      .description('the backend in use, model presets and parameter counts (computed from the config; no weights are allocated)')
      .addOption(new Option('--preset <name>', `transformer preset (${presetNames().join(', ')}) or autoencoder preset (${Object.keys(AUTOENCODER_DC_PRESETS).join(', ')})`))
      .addOption(new Option('--config <path>', 'a diffusers transformer or vae folder, or its config.json')),
  ).action(async (raw: { preset?: string; config?: string; backend?: string }) => {
    // First line: which backend this machine runs (the quick check after installing).
    await startBackend(raw.backend);
    for (const line of infoLines(parseInfoOptions(raw))) console.log(line);
  });
}
