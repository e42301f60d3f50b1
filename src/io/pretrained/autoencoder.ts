/**
 * Loading and saving `AutoencoderDC` in the layout diffusers' `save_pretrained` writes (the `vae/`
 * folder of a SANA pipeline, or `mit-han-lab/dc-ae-f32c32-sana-1.0-diffusers`): `config.json` plus
 * `diffusion_pytorch_model.safetensors` (or `model.safetensors`, or a sharded index), PyTorch layouts
 * and the reference's key names. Loading is strict; saving is atomic (a folder appears complete or not
 * at all).
 */
import * as fs from 'fs';
import * as path from 'path';
import { TensorToWrite, writeSafetensors } from '../safetensors';
import { readJsonFile } from '../json';
import { writeDirAtomic, writeFileAtomic } from '../atomic';
import { AutoencoderDC, AutoencoderDCConfig, parseAutoencoderDCConfig } from '../../models/dcae';
import { isDir, loadWeightsInto } from './weights';

/** The diffusers version whose file layout this mirrors (written into saved configs). */
const DIFFUSERS_VERSION = '0.40.0.dev0';

/** Reads and validates `<dir>/config.json` (or a config file given directly). */
export function readAutoencoderDCConfig(dirOrFile: string): AutoencoderDCConfig {
  const file = isDir(dirOrFile) ? path.join(dirOrFile, 'config.json') : dirOrFile;
  if (!fs.existsSync(file)) throw new Error(`${file}: AutoencoderDC config not found (a vae folder holds config.json next to its weights)`);
  return parseAutoencoderDCConfig(readJsonFile(file), file);
}

export interface LoadAutoencoderDCOptions {
  /** Use this config instead of `<dir>/config.json` (required when a weights file is given). */
  config?: AutoencoderDCConfig | Record<string, unknown>;
}

/**
 * Builds an `AutoencoderDC` from a vae folder (or a `.safetensors` file / shard index with
 * `opts.config`). Every missing, unexpected or mis-shaped key is listed in one error; weights are
 * streamed one tensor at a time. Free the model with `model.dispose()`.
 */
export function loadAutoencoderDC(dirOrWeights: string, opts: LoadAutoencoderDCOptions = {}): AutoencoderDC {
  if (!opts.config && !isDir(dirOrWeights)) {
    throw new Error(`${dirOrWeights}: not a folder; pass { config } to load a bare weights file`);
  }
  const config = opts.config ? parseAutoencoderDCConfig(opts.config as Record<string, unknown>) : readAutoencoderDCConfig(dirOrWeights);
  const model = new AutoencoderDC(config);
  return loadWeightsInto(model, dirOrWeights);
}

/** `config.json` content for a model, in diffusers' format (keys sorted, metadata first). */
export function autoencoderDCConfigJson(config: AutoencoderDCConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { _class_name: 'AutoencoderDC', _diffusers_version: DIFFUSERS_VERSION };
  for (const k of Object.keys(config).sort()) out[k] = (config as unknown as Record<string, unknown>)[k];
  return out;
}

/**
 * Writes `config.json` and `diffusion_pytorch_model.safetensors` into `dir` atomically (the folder is
 * replaced only once both files are complete). Weights are float32 in PyTorch layout.
 */
export function saveAutoencoderDC(model: AutoencoderDC, dir: string): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [key, t] of model.stateDict()) {
    // num_batches_tracked is int64 in PyTorch; everything else float32.
    tensors.set(key, key.endsWith('.num_batches_tracked') ? { dtype: 'I64', shape: t.shape, data: BigInt64Array.from(t.data, (v) => BigInt(Math.round(v))) } : { dtype: 'F32', shape: t.shape, data: t.data });
  }
  writeDirAtomic(dir, (tmp) => {
    writeFileAtomic(path.join(tmp, 'config.json'), `${JSON.stringify(autoencoderDCConfigJson(model.config), null, 2)}\n`);
    writeSafetensors(path.join(tmp, 'diffusion_pytorch_model.safetensors'), tensors, { format: 'pt' });
  });
}

