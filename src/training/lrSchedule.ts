/**
 * Learning-rate schedules with linear warmup, as diffusers' `optimization.py` defines them and SANA
 * uses them (`get_constant_schedule_with_warmup`, `get_cosine_schedule_with_warmup`): the scheduler is
 * stepped after each optimizer step, so update k (counting from 0) uses lambda(k), and the first update
 * of a warmup is taken at lr 0.
 */
import type { LrScheduleConfig } from '../config/train';

export interface LrSchedule {
  type: 'constant' | 'cosine';
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Lowest lr of the cosine decay (0 in diffusers). */
  minLr: number;
}

export function lrScheduleFromConfig(cfg: LrScheduleConfig, baseLr: number, totalSteps: number): LrSchedule {
  return { type: cfg.type, baseLr, warmupSteps: cfg.warmup_steps, totalSteps, minLr: cfg.min_lr };
}

/** The learning rate of update `k` (0-based). */
export function learningRate(s: LrSchedule, k: number): number {
  if (k < s.warmupSteps) return (s.baseLr * k) / Math.max(1, s.warmupSteps);
  if (s.type === 'constant') return s.baseLr;
  // Half a cosine from baseLr at the end of warmup to minLr at totalSteps.
  const progress = Math.min(1, (k - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps));
  return s.minLr + (s.baseLr - s.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
