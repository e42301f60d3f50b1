/**
 * Optional Weights & Biases reporting (`report_to: wandb`) through the optional dependency
 * `@wandb/sdk`. Reporting must never stop training: a missing package, no credentials or no network
 * each produce one clear message and the run goes on without it.
 */
import type { TrainEvent, TrainEventHandler } from './events';

export interface WandbSettings {
  project: string;
  entity: string | null;
  name: string | null;
}

export interface Reporter {
  onEvent(e: TrainEvent): void;
  finish(): Promise<void>;
}

interface WandbRun {
  log(data: Record<string, unknown>, opts?: { step?: number }): unknown;
  finish?(): Promise<unknown>;
}

interface WandbModule {
  init(opts: Record<string, unknown>): Promise<WandbRun>;
}

function loadSdk(): WandbModule | string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require('@wandb/sdk');
    const sdk = (mod.default ?? mod) as WandbModule;
    return typeof sdk.init === 'function' ? sdk : 'the installed @wandb/sdk has no init()';
  } catch (e) {
    return /Cannot find module/.test((e as Error).message) ? '@wandb/sdk is not installed (npm install @wandb/sdk)' : `@wandb/sdk failed to load: ${(e as Error).message.split('\n')[0]}`;
  }
}

/**
 * Starts a W&B run, or returns null after emitting a message saying why reporting is off.
 * `env` is the process environment (a parameter so tests control it).
 */
export async function createWandbReporter(settings: WandbSettings, config: Record<string, unknown>, emit: TrainEventHandler, env: NodeJS.ProcessEnv = process.env): Promise<Reporter | null> {
  const off = (why: string) => {
    emit({ type: 'message', level: 'warn', text: `W&B reporting is off: ${why}; training continues and logs to log.jsonl` });
    return null;
  };
  const mode = env.WANDB_MODE;
  if (mode === 'disabled') return off('WANDB_MODE=disabled');
  if (!env.WANDB_API_KEY && mode !== 'offline' && mode !== 'dryrun') return off('no credentials (set WANDB_API_KEY, or WANDB_MODE=offline to record locally)');
  const sdk = loadSdk();
  if (typeof sdk === 'string') return off(sdk);
  let run: WandbRun;
  try {
    run = await sdk.init({ project: settings.project, entity: settings.entity ?? undefined, name: settings.name ?? undefined, config, mode });
  } catch (e) {
    return off(`could not start a run (${(e as Error).message.split('\n')[0]})`);
  }
  let broken = false;
  const guard = (what: string, f: () => unknown) => {
    if (broken) return;
    try {
      const r = f();
      if (r && typeof (r as Promise<unknown>).catch === 'function') (r as Promise<unknown>).catch((e) => fail(what, e));
    } catch (e) {
      fail(what, e);
    }
  };
  const fail = (what: string, e: unknown) => {
    if (broken) return;
    broken = true;
    emit({ type: 'message', level: 'warn', text: `W&B reporting stopped: ${what} failed (${(e as Error).message.split('\n')[0]}); training continues` });
  };
  return {
    onEvent(e) {
      if (e.type === 'log') guard('log', () => run.log({ ...e.record }, { step: e.record.step }));
    },
    async finish() {
      if (!broken && run.finish) await run.finish().catch((e) => fail('finish', e));
    },
  };
}
