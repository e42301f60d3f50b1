/**
 * What every pretrained-model loader shares: a folder test, and a strict streamed load of a
 * safetensors source (file, folder or shard index) into a freshly built model.
 */
import * as fs from 'fs';
import { SafetensorsCheckpoint } from '../safetensors';
import type { Module } from '../../nn';

export function isDir(p: string): boolean {
  return fs.existsSync(p) && fs.statSync(p).isDirectory();
}

export interface LoadWeightsOptions {
  /** Checkpoint keys carry this prefix (e.g. `model.` of a causal-LM checkpoint). */
  prefix?: string;
  /** Checkpoint keys that are not the model's and are skipped. */
  ignore?: RegExp[];
}

/**
 * Loads `source` into `model` strictly (every missing, unexpected or mis-shaped key in one error),
 * one tensor at a time. On failure the model is disposed and the error rethrown, so a caller that
 * built the model only for this load leaks nothing.
 */
export function loadWeightsInto<M extends Module>(model: M, source: string, opts: LoadWeightsOptions = {}): M {
  let ckpt: SafetensorsCheckpoint | null = null;
  try {
    ckpt = SafetensorsCheckpoint.open(source);
    const prefix = opts.prefix ?? '';
    model.loadStateDict(ckpt, { sourceName: source, ...(prefix ? { prefix } : {}), ...(opts.ignore ? { ignore: opts.ignore } : {}) });
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    ckpt?.close();
  }
}
