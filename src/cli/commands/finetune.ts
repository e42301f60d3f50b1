/**
 * `sana finetune --config run.yaml [--set key.path=value ...] [--resume latest|DIR] [--stop-at N]`:
 * argv -> typed options -> one call to `runFinetune` (LoRA on a pretrained transformer), printing the
 * trainer's progress like `sana train`.
 */
import { Command, Option } from 'commander';
import * as YAML from 'yaml';
import { collect, startBackend, withBackendOption } from '../common';
import { loadTrainConfig } from '../../config/train';
import { FinetuneRunResult, runFinetune } from '../../pipelines/finetune';
import type { TrainEvent } from '../../training/events';
import { formatProgress } from './train';

export interface FinetuneCommandOptions {
  config: string;
  set: string[];
  resume: string | null;
  backend: string | null;
  stopAt: number | null;
}

function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${v}"`);
  return n;
}

/** One line per event worth showing (log steps, checkpoints, messages). */
function printEvent(e: TrainEvent): void {
  switch (e.type) {
    case 'start':
      console.log(`run ${e.runDir}: ${e.resumedFrom ? `resuming from ${e.resumedFrom} at step ${e.step}` : 'starting'}, ${e.totalSteps} steps, ${e.numTrainable} trainable LoRA parameters`);
      break;
    case 'step':
      if (process.stdout.isTTY) process.stdout.write(`\r${formatProgress(e)}\x1b[K`);
      break;
    case 'log':
      if (!process.stdout.isTTY) console.log(`step ${e.record.step}  loss ${e.record.loss.toFixed(4)}  lr ${e.record.lr.toExponential(2)}  grad ${e.record.grad_norm.toFixed(3)}`);
      break;
    case 'checkpoint':
      console.log(`${process.stdout.isTTY ? '\n' : ''}checkpoint ${e.dir}`);
      break;
    case 'message':
      console.log(`${e.level === 'warn' ? 'warning: ' : ''}${e.text}`);
      break;
    default:
      break;
  }
}

/** Loads the config (with overrides), starts the backend and fine-tunes. */
export async function finetuneCommand(opts: FinetuneCommandOptions): Promise<FinetuneRunResult> {
  const config = loadTrainConfig(opts.config, opts.set);
  await startBackend(opts.backend ?? config.backend ?? undefined);
  let stop: (() => void) | null = null;
  const onSigint = () => {
    if (!stop) process.exit(130);
    console.log('\nstopping after this step (a checkpoint will be written); press Ctrl-C again to abort');
    stop();
    stop = null;
  };
  process.on('SIGINT', onSigint);
  try {
    const result = await runFinetune({
      config,
      configText: YAML.stringify(config),
      resume: opts.resume,
      stopAt: opts.stopAt ?? undefined,
      onEvent: printEvent,
      onStopHandle: (s) => (stop = s),
    });
    console.log(`done at step ${result.step}: ${result.loraFile ?? 'no checkpoint written'}`);
    return result;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Registers `sana finetune`; `action` is replaceable so tests can check the parsed options. */
export function registerFinetune(program: Command, action: (opts: FinetuneCommandOptions) => Promise<unknown> = finetuneCommand): void {
  const cmd = program
    .command('finetune')
    .description('LoRA fine-tuning of a pretrained SANA transformer (writes pytorch_lora_weights.safetensors)')
    .requiredOption('-c, --config <file>', 'run config (YAML) with model.pretrained and a lora section')
    .option('--set <key=value>', 'override a config field, e.g. --set lora.rank=8 (repeatable)', collect, [])
    .option('--resume <latest|dir>', "continue from the run folder's latest checkpoint, or from a checkpoint folder")
    .addOption(new Option('--stop-at <step>', 'stop (with a checkpoint) after this step, before train.steps').argParser(parsePositiveInt));
  withBackendOption(cmd).action(async (o: { config: string; set: string[]; resume?: string; backend?: string; stopAt?: number }) => {
    await action({ config: o.config, set: o.set, resume: o.resume ?? null, backend: o.backend ?? null, stopAt: o.stopAt ?? null });
  });
}
