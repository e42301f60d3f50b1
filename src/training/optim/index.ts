/** Optimizers by config: AdamW and CAME (SANA's default, as its `CAMEWrapper`). */
import { Parameter } from '../../nn/module';
import type { OptimizerConfig } from '../../config/train';
import { Optimizer } from './optimizer';
import { AdamW } from './adamw';
import { CAME } from './came';

export { Optimizer, AdamW, CAME };
export type { OptimizerState, HostState } from './optimizer';
export { clipGradNorm, globalGradNorm } from './clipGrad';

/** Builds the optimizer of a run config over `params` (betas/eps default per optimizer when null). */
export function createOptimizer(cfg: OptimizerConfig, params: Array<[string, Parameter]>): Optimizer {
  if (cfg.type === 'adamw') {
    return new AdamW(params, {
      betas: cfg.betas ? [cfg.betas[0], cfg.betas[1]] : undefined,
      eps: typeof cfg.eps === 'number' ? cfg.eps : undefined,
      weightDecay: cfg.weight_decay,
    });
  }
  return new CAME(params, {
    betas: cfg.betas ? [cfg.betas[0], cfg.betas[1], cfg.betas[2]] : undefined,
    eps: Array.isArray(cfg.eps) ? [cfg.eps[0], cfg.eps[1]] : undefined,
    weightDecay: cfg.weight_decay,
    clipThreshold: cfg.clip_threshold,
    factoring: cfg.came_factoring,
  });
}
