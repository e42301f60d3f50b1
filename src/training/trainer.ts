/**
 * The training loop, model-agnostic: it asks a batch source for data, an objective for a loss, and
 * turns gradients into optimizer updates, with gradient accumulation, global-norm clipping, LR
 * schedule, EMA, logging, atomic checkpoints, validation hooks and exact resume. It plays the role
 * of SANA's `train_scripts/train.py` main loop, reorganised as one object with its dependencies
 * passed in (nothing global, no environment switches).
 *
 * Exactness of resume rests on two rules: every random draw is addressed by (run seed, micro-step,
 * stream name) inside the objective and the batch source, and the loop's own counters (step, log
 * window sums) are saved with each checkpoint. A run stopped at step k and resumed therefore logs the
 * same numbers as one that never stopped.
 *
 * Loss and gradient norm are read back once per step (two floats): the NaN guard needs them before
 * the update, and tfjs' CPU and wasm backends have already finished the step's work by then.
 */
import * as path from 'path';
import { tf, Scalar, Tensor } from '../backend';
import { Parameter } from '../nn/module';
import { valueAndGrads } from '../nn/grad';
import { Optimizer } from './optim/optimizer';
import { clipGradNorm } from './optim/clipGrad';
import { LrSchedule, learningRate } from './lrSchedule';
import { Ema } from './ema';
import { LogRecord, TrainEvent, TrainEventHandler } from './events';
import { RunFolder, TrainerState, readOptimizerState, readTrainerState, writeOptimizerState, writeTrainerState } from './runFolder';
import { writeSafetensors, SafetensorsFile } from '../io/safetensors';

/** Every batch names the images it holds, so a failure can point at them. */
export interface BatchBase {
  ids: string[];
}

/**
 * Where batches come from. `get(index)` must be a pure function of the micro-step index
 * (step * accumulation + micro) and the run seed, so a resumed run sees the same data.
 */
export interface BatchSource<B extends BatchBase> {
  get(index: number): B | Promise<B>;
  /** Frees the batch's tensors once the step is done with it. */
  release?(batch: B): void;
}

/** The loss of one micro-batch (a scalar, built inside the gradient tape). */
export type Objective<B> = (batch: B, index: number) => Scalar;

/** A non-finite loss or gradient: the run stops before the update, and nothing is saved. */
export class NonFiniteLossError extends Error {
  constructor(readonly step: number, readonly imageIds: string[], what: string) {
    super(`${what} at step ${step}; batch images: ${imageIds.join(', ') || '(none)'}. No update was applied and no checkpoint was written for this step`);
    this.name = 'NonFiniteLossError';
  }
}

export interface TrainerSetup<B extends BatchBase> {
  /** Trainable parameters, keyed by checkpoint key (the optimizer must hold the same ones). */
  params: Array<[string, Parameter]>;
  optimizer: Optimizer;
  schedule: LrSchedule;
  batches: BatchSource<B>;
  objective: Objective<B>;
  totalSteps: number;
  accumulation: number;
  /** Max global gradient norm; null = no clipping (the norm is still logged). */
  gradClip: number | null;
  emaDecay: number | null;
  logEvery: number;
  /** Checkpoint every N steps (always at the end of a session); null = only at the end. */
  checkpointEvery: number | null;
  keepLast: number;
  run: RunFolder;
  /** Writes the model's weights into a checkpoint folder (e.g. `transformer/` in diffusers format). */
  saveModel(dir: string): void;
  /** Loads the weights saved by `saveModel` from a checkpoint folder. */
  loadModel(dir: string): void;
  /** Optional validation (e.g. a PNG grid from fixed prompts and seeds); returns the file written. */
  validation?: { every: number; run(step: number): Promise<string> };
  /** Digest of the trajectory-relevant settings, compared on resume. */
  configDigest?: string;
  /** Samples per micro-batch (for samples/s). */
  batchSize?: number;
  onEvent?: TrainEventHandler;
}

export interface RunOptions {
  /** Stop (with a checkpoint) once this many steps are done, before `totalSteps`. */
  stopAt?: number;
}

export class Trainer<B extends BatchBase> {
  /** Optimizer updates completed. */
  step = 0;
  private window = { loss_sum: 0, grad_norm_sum: 0, count: 0, seconds: 0 };
  private elapsed = 0;
  private readonly ema: Ema | null;
  private stopRequested = false;
  private resumedFrom: string | null = null;
  private secPerStep: number | null = null;

  constructor(private readonly s: TrainerSetup<B>) {
    if (s.accumulation < 1 || !Number.isInteger(s.accumulation)) throw new Error(`gradient accumulation must be a positive integer, got ${s.accumulation}`);
    const optKeys = new Set(s.optimizer.params.map(([k]) => k));
    const missing = s.params.filter(([k]) => !optKeys.has(k)).map(([k]) => k);
    if (missing.length) throw new Error(`the optimizer does not hold trainable parameters: ${missing.slice(0, 5).join(', ')}`);
    this.ema = s.emaDecay !== null ? new Ema(s.params, s.emaDecay) : null;
  }

  private emit(e: TrainEvent): void {
    this.s.onEvent?.(e);
  }

  /** Asks the loop to stop after the current step (it then saves a checkpoint). */
  requestStop(): void {
    this.stopRequested = true;
  }

  /** Restores weights, optimizer, EMA and counters from a checkpoint folder. */
  resume(checkpointDir: string): void {
    const state = readTrainerState(checkpointDir);
    if (state.optimizer !== this.s.optimizer.type) {
      throw new Error(`${checkpointDir}: checkpoint was trained with ${state.optimizer}, this config uses ${this.s.optimizer.type}`);
    }
    if (this.s.configDigest && state.config_digest && state.config_digest !== this.s.configDigest) {
      this.emit({ type: 'message', level: 'warn', text: `${checkpointDir}: the config changed since this checkpoint; the resumed run will not match an uninterrupted one` });
    }
    this.s.loadModel(checkpointDir);
    this.s.optimizer.setState(readOptimizerState(path.join(checkpointDir, 'optimizer.safetensors')), path.join(checkpointDir, 'optimizer.safetensors'));
    if (this.ema) {
      const file = path.join(checkpointDir, 'ema.safetensors');
      const f = SafetensorsFile.open(file);
      try {
        const weights = new Map([...f.tensors.keys()].map((k) => [k, { shape: f.tensors.get(k)!.shape, data: f.readFloat32(k) }]));
        this.ema.load(weights, file);
      } finally {
        f.close();
      }
    }
    this.step = state.step;
    this.window = { ...state.window, seconds: 0 };
    this.elapsed = state.elapsed_s;
    this.resumedFrom = checkpointDir;
    // Lines logged after this checkpoint by the interrupted run are replaced by the resumed run's.
    this.s.run.truncateLog(state.step);
  }

  /** Trains until `totalSteps` (or `stopAt`, or a stop request); returns the last checkpoint written. */
  async run(opts: RunOptions = {}): Promise<{ step: number; checkpoint: string | null }> {
    const s = this.s;
    const until = Math.min(opts.stopAt ?? s.totalSteps, s.totalSteps);
    let lastCheckpoint: string | null = null;
    this.emit({ type: 'start', step: this.step, totalSteps: s.totalSteps, runDir: s.run.dir, resumedFrom: this.resumedFrom, numTrainable: s.params.reduce((n, [, p]) => n + p.size, 0) });
    while (this.step < until && !this.stopRequested) {
      const t0 = performance.now();
      const { loss, gradNorm, lr } = await this.trainStep();
      const seconds = (performance.now() - t0) / 1000;
      this.step++;
      this.elapsed += seconds;
      this.window.loss_sum += loss;
      this.window.grad_norm_sum += gradNorm;
      this.window.count++;
      this.window.seconds += seconds;
      this.secPerStep = this.secPerStep === null ? seconds : 0.9 * this.secPerStep + 0.1 * seconds;
      this.emit({ type: 'step', step: this.step, totalSteps: s.totalSteps, loss, lr, gradNorm, stepsPerSec: 1 / this.secPerStep, etaSec: (s.totalSteps - this.step) * this.secPerStep });

      if (this.step % s.logEvery === 0 || this.step === s.totalSteps) this.writeLog(loss, lr);
      const atEnd = this.step === until || this.stopRequested;
      if (atEnd || (s.checkpointEvery !== null && this.step % s.checkpointEvery === 0)) lastCheckpoint = this.saveCheckpoint();
      if (s.validation && (this.step % s.validation.every === 0 || this.step === s.totalSteps)) {
        const file = await s.validation.run(this.step);
        this.emit({ type: 'validation', step: this.step, file });
      }
    }
    this.emit({ type: 'done', step: this.step, runDir: s.run.dir, checkpoint: lastCheckpoint });
    return { step: this.step, checkpoint: lastCheckpoint };
  }

  /** One optimizer update over `accumulation` micro-batches. */
  private async trainStep(): Promise<{ loss: number; gradNorm: number; lr: number }> {
    const s = this.s;
    const A = s.accumulation;
    let summed: Map<string, Tensor> | null = null;
    const losses: Scalar[] = [];
    const ids: string[][] = [];
    try {
      for (let micro = 0; micro < A; micro++) {
        const index = this.step * A + micro;
        const batch = await s.batches.get(index);
        try {
          ids.push(batch.ids);
          const { value, grads } = valueAndGrads(() => s.objective(batch, index), s.params);
          losses.push(value);
          summed = summed ? addInto(summed, grads) : grads;
        } finally {
          s.batches.release?.(batch);
        }
      }
      // Accumulated gradients are the mean over micro-batches, as with loss / accumulation_steps.
      const mean = A === 1 ? summed! : scaleInto(summed!, 1 / A);
      summed = mean;
      const { grads, totalNorm } = clipGradNorm(mean, s.gradClip);
      try {
        const host = tf.tidy(() => tf.stack([...losses, totalNorm]).dataSync());
        const microLosses = Array.from(host.slice(0, A));
        const gradNorm = host[A];
        const bad = microLosses.map((l, i) => (Number.isFinite(l) ? null : i)).filter((i): i is number => i !== null);
        if (bad.length) throw new NonFiniteLossError(this.step + 1, bad.flatMap((i) => ids[i]), `loss is ${microLosses[bad[0]]}`);
        if (!Number.isFinite(gradNorm)) throw new NonFiniteLossError(this.step + 1, ids.flat(), `gradient norm is ${gradNorm}`);
        const lr = learningRate(s.schedule, this.step);
        s.optimizer.step(grads, lr);
        this.ema?.update();
        return { loss: microLosses.reduce((a, b) => a + b, 0) / A, gradNorm, lr };
      } finally {
        tf.dispose([...grads.values(), totalNorm]);
      }
    } finally {
      tf.dispose(losses);
      if (summed) tf.dispose([...summed.values()]);
    }
  }

  private writeLog(stepLoss: number, lr: number): void {
    const w = this.window;
    const record: LogRecord = {
      step: this.step,
      loss: w.loss_sum / w.count,
      step_loss: stepLoss,
      lr,
      grad_norm: w.grad_norm_sum / w.count,
      steps_per_s: w.seconds > 0 ? w.count / w.seconds : 0,
      samples_per_s: w.seconds > 0 ? (w.count * this.s.accumulation * (this.s.batchSize ?? 1)) / w.seconds : 0,
      elapsed_s: this.elapsed,
    };
    this.s.run.appendLog(record);
    this.emit({ type: 'log', record });
    this.window = { loss_sum: 0, grad_norm_sum: 0, count: 0, seconds: 0 };
  }

  private saveCheckpoint(): string {
    const s = this.s;
    const state: TrainerState = {
      step: this.step,
      total_steps: s.totalSteps,
      window: { loss_sum: this.window.loss_sum, grad_norm_sum: this.window.grad_norm_sum, count: this.window.count },
      elapsed_s: this.elapsed,
      optimizer: s.optimizer.type,
      config_digest: s.configDigest ?? '',
    };
    const dir = s.run.saveCheckpoint(this.step, s.keepLast, (tmp) => {
      s.saveModel(tmp);
      writeOptimizerState(path.join(tmp, 'optimizer.safetensors'), s.optimizer.getState());
      if (this.ema) {
        const weights = new Map([...this.ema.stateDict()].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }]));
        writeSafetensors(path.join(tmp, 'ema.safetensors'), weights, { format: 'pt', decay: String(this.ema.decay) });
      }
      // Written last: a folder with trainer_state.json is a complete checkpoint.
      writeTrainerState(tmp, state);
    });
    this.emit({ type: 'checkpoint', step: this.step, dir });
    return dir;
  }

  /** Frees optimizer and EMA state (the model belongs to the caller). */
  dispose(): void {
    this.s.optimizer.dispose();
    this.ema?.dispose();
  }
}

/** acc + grads, disposing both inputs' tensors; returns the new map. */
function addInto(acc: Map<string, Tensor>, grads: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, a] of acc) {
    const g = grads.get(k)!;
    out.set(k, tf.add(a, g));
    a.dispose();
    g.dispose();
  }
  return out;
}

function scaleInto(grads: Map<string, Tensor>, factor: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, g] of grads) {
    out.set(k, tf.mul(g, factor));
    g.dispose();
  }
  return out;
}
