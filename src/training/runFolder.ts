/**
 * The run folder: everything a training run leaves behind, laid out so a run can be inspected, resumed
 * and its checkpoints opened elsewhere.
 *
 *   <run>/config.yaml                    the resolved config (after --set overrides and defaults)
 *   <run>/log.jsonl                      one JSON line per log step (see LogRecord)
 *   <run>/checkpoints/step-00000100/     one folder per checkpoint, written to a temporary sibling and
 *       transformer/ (or vae/)           renamed when complete, so a crash never leaves half of one;
 *       optimizer.safetensors            the model in diffusers folder format, the optimizer slots,
 *       ema.safetensors (optional)       the EMA weights (PyTorch layout, model keys)
 *       trainer_state.json               and the loop's own counters
 *   <run>/samples/step-00000100.png      validation grids
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors';
import { OptimizerState, HostState } from './optim/optimizer';
import type { LogRecord } from './events';

const CHECKPOINT_RE = /^step-(\d+)$/;

export interface CheckpointRef {
  step: number;
  dir: string;
}

/** Counters the loop needs to continue exactly where it stopped. */
export interface TrainerState {
  step: number;
  total_steps: number;
  /** Sums over the current (unfinished) log window, so a resumed run logs the same means. */
  window: { loss_sum: number; grad_norm_sum: number; count: number };
  elapsed_s: number;
  optimizer: string;
  /** Digest of the settings that change the trajectory (a mismatch on resume is reported). */
  config_digest: string;
}

export class RunFolder {
  private constructor(readonly dir: string) {}

  /**
   * Opens (creating if needed) a run folder and proves it writable by writing a probe file; a
   * folder that cannot be written is reported before any training time is spent.
   */
  static open(dir: string): RunFolder {
    const abs = path.resolve(dir);
    try {
      if (fs.existsSync(abs) && !fs.statSync(abs).isDirectory()) throw Object.assign(new Error('exists and is not a folder'), { code: 'ENOTDIR' });
      fs.mkdirSync(abs, { recursive: true });
      const probe = path.join(abs, `.write-test-${process.pid}`);
      fs.writeFileSync(probe, '');
      fs.rmSync(probe);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(`run folder ${abs} is not writable (${err.code ?? err.message}): choose another output_dir or fix its permissions`);
    }
    return new RunFolder(abs);
  }

  get logFile(): string {
    return path.join(this.dir, 'log.jsonl');
  }

  get checkpointsDir(): string {
    return path.join(this.dir, 'checkpoints');
  }

  get samplesDir(): string {
    return path.join(this.dir, 'samples');
  }

  /** Writes the resolved config next to the logs. */
  writeConfig(yamlText: string): void {
    writeFileAtomic(path.join(this.dir, 'config.yaml'), yamlText);
  }

  appendLog(record: LogRecord): void {
    fs.appendFileSync(this.logFile, `${JSON.stringify(record)}\n`);
  }

  /** Every record of log.jsonl (a torn last line from a crash is ignored). */
  readLog(): LogRecord[] {
    if (!fs.existsSync(this.logFile)) return [];
    const out: LogRecord[] = [];
    for (const line of fs.readFileSync(this.logFile, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        // A line cut by a crash mid-write; everything before it is intact.
      }
    }
    return out;
  }

  /** Drops log lines after `step` (written by a run that went on past the checkpoint being resumed). */
  truncateLog(step: number): void {
    if (!fs.existsSync(this.logFile)) return;
    const kept = this.readLog().filter((r) => r.step <= step);
    writeFileAtomic(this.logFile, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  checkpointDir(step: number): string {
    return path.join(this.checkpointsDir, `step-${String(step).padStart(8, '0')}`);
  }

  /** Complete checkpoints, oldest first (temporary folders of an interrupted save are not listed). */
  checkpoints(): CheckpointRef[] {
    if (!fs.existsSync(this.checkpointsDir)) return [];
    return fs
      .readdirSync(this.checkpointsDir)
      .map((name) => ({ m: name.match(CHECKPOINT_RE), name }))
      .filter(({ m, name }) => m && fs.existsSync(path.join(this.checkpointsDir, name, 'trainer_state.json')))
      .map(({ m, name }) => ({ step: Number(m![1]), dir: path.join(this.checkpointsDir, name) }))
      .sort((a, b) => a.step - b.step);
  }

  latestCheckpoint(): CheckpointRef | null {
    const all = this.checkpoints();
    return all.length ? all[all.length - 1] : null;
  }

  /**
   * Writes checkpoint `step` atomically (`fill` writes into a temporary folder that is renamed when
   * complete), then deletes all but the newest `keepLast`.
   */
  saveCheckpoint(step: number, keepLast: number, fill: (tmpDir: string) => void): string {
    const dir = this.checkpointDir(step);
    writeDirAtomic(dir, fill);
    const all = this.checkpoints();
    for (const old of all.slice(0, Math.max(0, all.length - keepLast))) fs.rmSync(old.dir, { recursive: true, force: true });
    return dir;
  }

  /**
   * Resolves `--resume`: 'latest' is this folder's newest checkpoint; otherwise a checkpoint folder,
   * or a run folder whose newest checkpoint is taken.
   */
  resolveResume(spec: string): CheckpointRef {
    if (spec === 'latest') {
      const latest = this.latestCheckpoint();
      if (!latest) throw new Error(`--resume latest: ${this.checkpointsDir} has no complete checkpoint`);
      return latest;
    }
    const abs = path.resolve(spec);
    if (fs.existsSync(path.join(abs, 'trainer_state.json'))) return { step: readTrainerState(abs).step, dir: abs };
    if (fs.existsSync(path.join(abs, 'checkpoints'))) {
      const latest = new RunFolder(abs).latestCheckpoint();
      if (latest) return latest;
    }
    throw new Error(`--resume ${spec}: not a checkpoint folder (no trainer_state.json) nor a run folder with checkpoints`);
  }
}

export function writeTrainerState(dir: string, state: TrainerState): void {
  writeFileAtomic(path.join(dir, 'trainer_state.json'), `${JSON.stringify(state, null, 2)}\n`);
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, 'trainer_state.json');
  let s: TrainerState;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainerState;
  } catch (e) {
    throw new Error(`${file}: cannot read trainer state (${(e as Error).message})`);
  }
  if (!Number.isInteger(s.step) || s.step < 0 || !s.window) throw new Error(`${file}: not a trainer state (no step / window)`);
  return s;
}

/** Optimizer slots as safetensors (`<param key>.<slot>`, memory layout), step counts in the metadata. */
export function writeOptimizerState(file: string, state: OptimizerState): void {
  const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (const [k, t] of state.tensors) tensors.set(k, { dtype: 'F32', shape: t.shape, data: t.data });
  writeSafetensors(file, tensors, { format: 'sana-tfjs-optimizer', optimizer: state.type, layout: 'tf', steps: JSON.stringify(state.steps) });
}

export function readOptimizerState(file: string): OptimizerState {
  const f = SafetensorsFile.open(file);
  try {
    const type = f.metadata.optimizer;
    if (!type || f.metadata.format !== 'sana-tfjs-optimizer') throw new Error(`${file}: not an optimizer state file (metadata format/optimizer missing)`);
    const tensors = new Map<string, HostState>();
    for (const [k, info] of f.tensors) tensors.set(k, { shape: info.shape, data: f.readFloat32(k) });
    return { type, steps: JSON.parse(f.metadata.steps ?? '{}') as Record<string, number>, tensors };
  } finally {
    f.close();
  }
}
