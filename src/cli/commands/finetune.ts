/**
 * `sana finetune --config run.yaml [--set key.path=value ...] [--resume latest|DIR] [--stop-at N]`:
 * argv -> typed options -> one call to `runFinetune` (LoRA on a pretrained transformer), printing the
 * trainer's progress as `sana train` does.
 */
import { Command } from 'commander';
import * as YAML from 'yaml';
import { startBackend } from '../common';
import { loadTrainConfig } from '../../config/train';
import { FinetuneRunResult, runFinetune } from '../../pipelines/finetune';
import { TrainCommandOptions, consolePrinter, stopOnSigint, withRunOptions } from './train';

/** The same options as `sana train`. */
export type FinetuneCommandOptions = TrainCommandOptions;

/** Loads the config (with overrides), starts the backend and fine-tunes. */
export async function finetuneCommand(opts: FinetuneCommandOptions): Promise<FinetuneRunResult> {
  const config = loadTrainConfig(opts.config, opts.set);
  await startBackend(opts.backend ?? config.backend ?? undefined);
  // The last line names the adapter file rather than the checkpoint folder.
  const print = consolePrinter({ trainableLabel: 'trainable LoRA parameters', done: false });
  const result = await stopOnSigint((onStopHandle) =>
    runFinetune({ config, configText: YAML.stringify(config), resume: opts.resume, stopAt: opts.stopAt ?? undefined, onEvent: print, onStopHandle }),
  );
  console.log(`done at step ${result.step}: ${result.loraFile ?? 'no checkpoint written'}`);
  return result;
}

/** Registers `sana finetune`; `action` is replaceable so tests can check the parsed options. */
export function registerFinetune(program: Command, action: (opts: FinetuneCommandOptions) => Promise<unknown> = finetuneCommand): void {
  const cmd = program
    .command('finetune')
    .description('LoRA fine-tuning of a pretrained SANA transformer (writes pytorch_lora_weights.safetensors)');
  withRunOptions(cmd, 'run config (YAML) with model.pretrained and a lora section', 'lora.rank=8', action);
}
