/**
 * Parameter counts of a SANA transformer from its config alone: the model's parameters are declared
 * lazily, so building one to count it allocates no weights.
 */
import { Module } from '../../nn';
import { SanaTransformerConfig } from './config';
import { SanaTransformer2DModel } from './model';

export interface ParameterGroup {
  /** Top-level module or parameter name (`transformer_blocks`, `caption_projection`, ...). */
  name: string;
  count: number;
}

export interface SanaTransformerInfo {
  config: SanaTransformerConfig;
  total: number;
  /** Bytes of the weights in float32 (what memory holds and `save` writes). */
  float32Bytes: number;
  /** Parameters of one transformer block. */
  perBlock: number;
  groups: ParameterGroup[];
}

/** Counts by top-level name, in declaration order. */
export function parameterGroups(model: Module): ParameterGroup[] {
  const groups = new Map<string, number>();
  for (const [key, p] of model.namedParameters()) {
    const name = key.split('.')[0];
    groups.set(name, (groups.get(name) ?? 0) + p.size);
  }
  return [...groups.entries()].map(([name, count]) => ({ name, count }));
}

/** Parameter counts for a config (nothing is allocated). */
export function sanaTransformerInfo(config: SanaTransformerConfig): SanaTransformerInfo {
  const model = new SanaTransformer2DModel(config);
  const total = model.numParameters();
  return {
    config: model.config,
    total,
    float32Bytes: total * 4,
    perBlock: model.transformer_blocks.length ? model.transformer_blocks[0].numParameters() : 0,
    groups: parameterGroups(model),
  };
}
