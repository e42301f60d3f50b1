/**
 * Typed progress events of a training run. The trainer emits them; the command line prints them, the
 * W&B reporter forwards them, tests collect them. Nothing in the library prints.
 */

/** One line of `log.jsonl`. */
export interface LogRecord {
  step: number;
  /** Mean loss over the steps since the previous log line. */
  loss: number;
  /** Loss of this step alone. */
  step_loss: number;
  lr: number;
  /** Global gradient norm before clipping, mean over the steps since the previous log line. */
  grad_norm: number;
  steps_per_s: number;
  samples_per_s: number;
  /** Seconds of training so far, across resumes. */
  elapsed_s: number;
  [extra: string]: number;
}

export type TrainEvent =
  | { type: 'start'; step: number; totalSteps: number; runDir: string; resumedFrom: string | null; numTrainable: number }
  | { type: 'step'; step: number; totalSteps: number; loss: number; lr: number; gradNorm: number; stepsPerSec: number; etaSec: number }
  | { type: 'log'; record: LogRecord }
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'validation'; step: number; file: string }
  | { type: 'message'; level: 'info' | 'warn'; text: string }
  | { type: 'done'; step: number; runDir: string; checkpoint: string | null };

export type TrainEventHandler = (e: TrainEvent) => void;
