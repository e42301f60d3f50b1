/**
 * `sana fuse --transformer DIR --lora FILE[:scale] [--lora ...] --output DIR`: bakes LoRA files into a
 * full transformer checkpoint (diffusers folder), like diffusers' `fuse_lora(lora_scale=...)` followed
 * by `save_pretrained`. argv -> typed options -> one call to `fuseLoraCheckpoint`.
 */
import { Command } from 'commander';
import { collect, startBackend, withBackendOption } from '../common';
import { FuseResult, fuseLoraCheckpoint } from '../../pipelines/finetune';
import { LoraFileSpec, parseLoraSpec } from '../../pipelines/loraLoading';

export interface FuseCommandOptions {
  transformer: string;
  loras: LoraFileSpec[];
  output: string;
  backend: string | null;
}

export async function fuseCommand(opts: FuseCommandOptions): Promise<FuseResult> {
  await startBackend(opts.backend ?? undefined);
  const result = fuseLoraCheckpoint(opts);
  console.log(`fused ${result.layers} layers from ${opts.loras.map((l) => `${l.path} (scale ${l.scale})`).join(', ')} into ${result.output}`);
  return result;
}

/** Registers `sana fuse`; `action` is replaceable so tests can check the parsed options. */
export function registerFuse(program: Command, action: (opts: FuseCommandOptions) => Promise<unknown> = fuseCommand): void {
  const cmd = program
    .command('fuse')
    .description('bake LoRA file(s) into a full transformer checkpoint folder (diffusers format)')
    .requiredOption('-t, --transformer <dir>', 'base transformer folder (or a pipeline folder / training checkpoint holding transformer/)')
    .requiredOption('-l, --lora <file[:scale]>', 'LoRA file and its scale (default 1); repeat to add several', collect, [])
    .requiredOption('-o, --output <dir>', 'where to write the fused transformer folder');
  withBackendOption(cmd).action(async (o: { transformer: string; lora: string[]; output: string; backend?: string }) => {
    await action({ transformer: o.transformer, loras: o.lora.map(parseLoraSpec), output: o.output, backend: o.backend ?? null });
  });
}
