/**
 * `sana train --config run.yaml [--set key.path=value ...] [--resume latest|DIR] [--backend NAME]`:
 * argv -> typed options -> one call to `runTraining`, with a console progress line.
 */
import { Command, Option } from 'commander';
import * as YAML from 'yaml';
import { collect, startBackend, withBackendOption, parsePositiveInt } from '../common';
import { consoleLines } from '../console';
import { loadTrainConfig, TrainConfig } from '../../config/train';
import { runTraining, TrainRunResult } from '../../pipelines/train';
import type { TrainEvent } from '../../training/events';

export interface TrainCommandOptions {
  config: string;
  set: string[];
  resume: string | null;
  backend: string | null;
  stopAt: number | null;
}

/** `1h02m`, `3m07s`, `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** The progress line: `step 120/1000  loss 0.4123  lr 1.00e-4  2.31 it/s  ETA 6m21s`. */
export function formatProgress(e: Extract<TrainEvent, { type: 'step' }>): string {
  const width = String(e.totalSteps).length;
  return `step ${String(e.step).padStart(width)}/${e.totalSteps}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  grad ${e.gradNorm.toFixed(3)}  ${e.stepsPerSec.toFixed(2)} it/s  ETA ${formatDuration(e.etaSec)}`;
}

export interface PrinterOptions {
  /** What the trainable parameters are called in the start line (default "trainable parameters"). */
  trainableLabel?: string;
  /** Print the `done` event (a caller with a better last line turns it off). Default true. */
  done?: boolean;
}

/** Prints events: a progress line rewritten in place on a terminal, one line per log step otherwise. */
export function consolePrinter(opts: PrinterOptions = {}): (e: TrainEvent) => void {
  const out = consoleLines();
  let last: Extract<TrainEvent, { type: 'step' }> | null = null;
  return (e) => {
    switch (e.type) {
      case 'start':
        out.line(`run ${e.runDir}: ${e.resumedFrom ? `resuming from ${e.resumedFrom} at step ${e.step}` : 'starting'}, ${e.totalSteps} steps, ${(e.numTrainable / 1e6).toFixed(2)}M ${opts.trainableLabel ?? 'trainable parameters'}`);
        break;
      case 'step':
        last = e;
        out.progress(formatProgress(e));
        break;
      case 'log':
        // Without a terminal, one progress line per log step (loss and it/s averaged over the window).
        if (!out.tty && last) out.line(formatProgress({ ...last, loss: e.record.loss, gradNorm: e.record.grad_norm, stepsPerSec: e.record.steps_per_s }));
        break;
      case 'checkpoint':
        out.line(`checkpoint ${e.dir}`);
        break;
      case 'validation':
        out.line(`samples ${e.file}`);
        break;
      case 'message':
        out.line(`${e.level === 'warn' ? 'warning: ' : ''}${e.text}`);
        break;
      case 'done':
        if (opts.done === false) break;
        out.line(`done at step ${e.step}: ${e.checkpoint ?? 'no checkpoint written'}`);
        break;
    }
  };
}

/** Loads the config (with overrides), starts the backend and trains. */
export async function trainCommand(opts: TrainCommandOptions): Promise<TrainRunResult> {
  const config: TrainConfig = loadTrainConfig(opts.config, opts.set);
  await startBackend(opts.backend ?? config.backend ?? undefined);
  const print = consolePrinter();
  return stopOnSigint((onStopHandle) =>
    runTraining({ config, configText: YAML.stringify(config), resume: opts.resume, stopAt: opts.stopAt ?? undefined, onEvent: print, onStopHandle }),
  );
}

/**
 * Runs a training loop with Ctrl-C wired to it: the first press stops after the current step (the
 * loop writes a checkpoint), a second one aborts.
 */
export async function stopOnSigint<T>(run: (onStopHandle: (stop: () => void) => void) => Promise<T>): Promise<T> {
  let stop: (() => void) | null = null;
  const onSigint = () => {
    if (!stop) process.exit(130);
    console.log('\nstopping after this step (a checkpoint will be written); press Ctrl-C again to abort');
    stop();
    stop = null;
  };
  process.on('SIGINT', onSigint);
  try {
    return await run((s) => (stop = s));
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Registers `sana train`; `action` is replaceable so tests can check the parsed options. */
export function registerTrain(program: Command, action: (opts: TrainCommandOptions) => Promise<unknown> = trainCommand): void {
  const cmd = program
    .command('train')
    .description('train a SANA model from a YAML config (rectified flow), or an AutoencoderDC (task: autoencoder)');
  withRunOptions(cmd, 'run config (YAML)', 'optimizer.lr=2e-5', action);
}

/** The options `sana train` and `sana finetune` share, parsed into TrainCommandOptions for `action`. */
export function withRunOptions(cmd: Command, configHelp: string, setExample: string, action: (opts: TrainCommandOptions) => Promise<unknown>): void {
  cmd
    .requiredOption('-c, --config <file>', configHelp)
    .option('--set <key=value>', `override a config field, e.g. --set ${setExample} (repeatable)`, collect, [])
    .option('--resume <latest|dir>', "continue from the run folder's latest checkpoint, or from a checkpoint folder")
    .addOption(new Option('--stop-at <step>', 'stop (with a checkpoint) after this step, before train.steps').argParser(parsePositiveInt));
  withBackendOption(cmd).action(async (o: { config: string; set: string[]; resume?: string; backend?: string; stopAt?: number }) => {
    await action({ config: o.config, set: o.set, resume: o.resume ?? null, backend: o.backend ?? null, stopAt: o.stopAt ?? null });
  });
}
