/**
 * `sana convert CHECKPOINT.pth --out DIR`: an original NVlabs SANA checkpoint -> a diffusers-style
 * `DIR/transformer/` folder (config.json + safetensors), with the reference conversion's key mapping
 * (src/io/convertSana.ts). The `.pth` is read by the safe reader: nothing in the file can run code.
 */
import * as fs from 'fs';
import { Command, Option } from 'commander';
import { ConvertDType, ConvertSanaResult, convertSanaCheckpoint } from '../../io/convertSana';
import { consoleLines, crossesTenth } from '../console';

export interface ConvertCommandOptions {
  checkpoint: string;
  out: string;
  /** Checkpoint entry holding the weights (`state_dict`, `state_dict_ema`, ...). */
  key: string;
  imageSize: number;
  numCrossAttentionHeads: number | null;
  dtype: ConvertDType;
  /** Largest shard in bytes. */
  maxShardBytes: number;
}

export interface ConvertRawOptions {
  out: string;
  key?: string;
  imageSize?: string;
  numCrossAttentionHeads?: string;
  dtype?: string;
  maxShardSize?: string;
}

function positiveInt(option: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`sana convert: ${option} must be a positive integer, got "${v}"`);
  return n;
}

/** `5GB`, `500MB`, `1e9` -> bytes (decimal units, as the reference's `max_shard_size`). */
export function parseByteSize(v: string): number {
  const m = /^\s*([0-9.eE+]+)\s*(B|KB|MB|GB)?\s*$/i.exec(v);
  const n = m ? Number(m[1]) * { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[(m[2] ?? 'B').toUpperCase() as 'B'] : NaN;
  if (!Number.isFinite(n) || n < 1) throw new Error(`sana convert: --max-shard-size must be a size such as 5GB or 500MB, got "${v}"`);
  return Math.floor(n);
}

/** Validates commander's raw options into the typed form; errors name the option. */
export function parseConvertOptions(checkpoint: string, raw: ConvertRawOptions): ConvertCommandOptions {
  const dtype = raw.dtype ?? 'float32';
  if (!['float32', 'float16', 'bfloat16'].includes(dtype)) throw new Error(`sana convert: --dtype must be float32, float16 or bfloat16, got "${dtype}"`);
  return {
    checkpoint,
    out: raw.out,
    key: raw.key ?? 'state_dict',
    imageSize: positiveInt('--image-size', raw.imageSize ?? '1024'),
    numCrossAttentionHeads: raw.numCrossAttentionHeads === undefined ? null : positiveInt('--num-cross-attention-heads', raw.numCrossAttentionHeads),
    dtype: dtype as ConvertDType,
    maxShardBytes: parseByteSize(raw.maxShardSize ?? '5GB'),
  };
}

/** Runs the conversion with a progress line. */
export async function convertCommand(opts: ConvertCommandOptions): Promise<ConvertSanaResult> {
  if (!fs.existsSync(opts.checkpoint)) throw new Error(`${opts.checkpoint}: no such checkpoint file`);
  const out = consoleLines();
  const result = convertSanaCheckpoint(opts.checkpoint, opts.out, {
    key: opts.key,
    imageSize: opts.imageSize,
    numCrossAttentionHeads: opts.numCrossAttentionHeads ?? undefined,
    dtype: opts.dtype,
    maxShardBytes: opts.maxShardBytes,
    onProgress: (done, total, key) => {
      const text = `converting ${String(done).padStart(String(total).length)}/${total}  ${key}`;
      if (out.tty && done < total) out.progress(text);
      else if (out.tty || crossesTenth(done, total)) out.line(text);
    },
  });
  const c = result.config;
  console.log(
    `wrote ${result.dir}: ${result.tensors} tensors in ${result.shards} shard(s), ${opts.dtype}; ` +
      `${c.num_layers} layers, width ${c.num_attention_heads * c.attention_head_dim}, sample_size ${c.sample_size}` +
      (result.dropped.length ? `; dropped ${result.dropped.join(', ')}` : ''),
  );
  return result;
}

/** Registers `sana convert`; `action` is replaceable so tests can check the parsed options. */
export function registerConvert(program: Command, action: (opts: ConvertCommandOptions) => Promise<unknown> = convertCommand): void {
  program
    .command('convert')
    .description('convert an original NVlabs SANA .pth checkpoint to a diffusers-style transformer folder')
    .argument('<checkpoint>', 'the original checkpoint (.pth), e.g. Sana_1600M_1024px.pth')
    .requiredOption('-o, --out <dir>', 'output folder (the transformer is written to <dir>/transformer)')
    .option('--key <name>', 'checkpoint entry holding the weights', 'state_dict')
    .option('--image-size <px>', 'training resolution (512, 1024, 2048, 4096): sets sample_size and interpolation_scale', '1024')
    .option('--num-cross-attention-heads <n>', 'cross-attention heads (default by model width: 1152 -> 16, 2240 -> 20)')
    .addOption(new Option('--dtype <type>', 'weight type written').choices(['float32', 'float16', 'bfloat16']).default('float32'))
    .option('--max-shard-size <size>', 'largest safetensors shard, e.g. 5GB', '5GB')
    .action(async (checkpoint: string, raw: ConvertRawOptions) => {
      await action(parseConvertOptions(checkpoint, raw));
    });
}
