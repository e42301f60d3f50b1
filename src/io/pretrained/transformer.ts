/**
 * Loading and saving `SanaTransformer2DModel` in the layout diffusers' `save_pretrained` writes (the
 * `transformer/` folder of a SANA pipeline, e.g. `Efficient-Large-Model/Sana_1600M_1024px_diffusers`):
 * `config.json` plus `diffusion_pytorch_model.safetensors`, or shards
 * `diffusion_pytorch_model-0000k-of-0000n.safetensors` listed by
 * `diffusion_pytorch_model.safetensors.index.json`. PyTorch layouts and the reference's key names.
 * Loading is strict (every missing, unexpected or mis-shaped key in one error); saving is atomic (the
 * folder appears complete or not at all) and shards like diffusers (default limit 10 GB).
 */
import * as fs from 'fs';
import * as path from 'path';
import { SafetensorsCheckpoint, TensorToWrite, writeSafetensors } from '../safetensors';
import { readJsonFile } from '../json';
import { writeDirAtomic, writeFileAtomic } from '../atomic';
import { tfToTorch } from '../../nn';
import {
  SanaTransformer2DModel,
  SanaTransformerConfig,
  parseSanaTransformerConfig,
  toDiffusersConfigJson,
} from '../../models/dit';
import { isDir, loadWeightsInto } from './weights';

/** The diffusers version whose file layout this mirrors (written into saved configs). */
const DIFFUSERS_VERSION = '0.40.0.dev0';
const WEIGHTS_NAME = 'diffusion_pytorch_model.safetensors';
const INDEX_NAME = 'diffusion_pytorch_model.safetensors.index.json';
/** diffusers' default `max_shard_size`. */
export const DEFAULT_MAX_SHARD_BYTES = 10 * 1000 ** 3;


/** Reads and validates `<dir>/config.json` (or a config file given directly). */
export function readSanaTransformerConfig(dirOrFile: string): SanaTransformerConfig {
  const file = isDir(dirOrFile) ? path.join(dirOrFile, 'config.json') : dirOrFile;
  if (!fs.existsSync(file)) throw new Error(`${file}: SanaTransformer2DModel config not found (a transformer folder holds config.json next to its weights)`);
  return parseSanaTransformerConfig(readJsonFile(file), file);
}

export interface LoadSanaTransformerOptions {
  /** Use this config instead of `<dir>/config.json` (required when a bare weights file is given). */
  config?: SanaTransformerConfig | Record<string, unknown>;
}

/**
 * Builds a `SanaTransformer2DModel` from a diffusers transformer folder (single file or sharded), or
 * from a `.safetensors` file / shard index with `opts.config`. Weights are streamed one tensor at a
 * time (F32, F16 and BF16 files load; memory is float32). Free the model with `model.dispose()`.
 */
export function loadSanaTransformer(dirOrWeights: string, opts: LoadSanaTransformerOptions = {}): SanaTransformer2DModel {
  if (!opts.config && !isDir(dirOrWeights)) {
    throw new Error(`${dirOrWeights}: not a folder; pass { config } to load a bare weights file`);
  }
  const config = opts.config ? parseSanaTransformerConfig(opts.config, `${dirOrWeights} (config given)`) : readSanaTransformerConfig(dirOrWeights);
  const model = new SanaTransformer2DModel(config);
  return loadWeightsInto(model, dirOrWeights);
}

export interface SaveSanaTransformerOptions {
  /** Largest shard in bytes (diffusers' `max_shard_size`); a model that fits is one file. */
  maxShardBytes?: number;
}

/** Groups keys into shards of at most `limit` bytes, in key order (a larger tensor gets its own shard). */
function planShards(sizes: Array<[string, number]>, limit: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const [key, size] of sizes) {
    if (current.length && bytes + size > limit) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(key);
    bytes += size;
  }
  if (current.length) shards.push(current);
  return shards;
}

/**
 * Writes `config.json` and the float32 weights into `dir` as diffusers' `save_pretrained` does, so
 * `SanaTransformer2DModel.from_pretrained(dir)` opens it. The folder is replaced atomically; weights
 * are copied from the device one shard at a time.
 */
export function saveSanaTransformer(model: SanaTransformer2DModel, dir: string, opts: SaveSanaTransformerOptions = {}): void {
  const limit = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(limit > 0)) throw new Error(`saveSanaTransformer: maxShardBytes must be positive, got ${limit}`);
  const params = new Map(model.namedParameters());
  const keys = [...params.keys()].sort();
  const shards = planShards(keys.map((k) => [k, params.get(k)!.size * 4]), limit);
  const shardName = (i: number) => (shards.length === 1 ? WEIGHTS_NAME : `diffusion_pytorch_model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const configJson = { ...toDiffusersConfigJson(model.config), _diffusers_version: DIFFUSERS_VERSION };
  writeDirAtomic(dir, (tmp) => {
    writeFileAtomic(path.join(tmp, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    shards.forEach((shardKeys, i) => {
      const tensors = new Map<string, TensorToWrite>();
      for (const key of shardKeys) {
        const p = params.get(key)!;
        const t = tfToTorch(p.layout, p.value);
        tensors.set(key, { dtype: 'F32', shape: [...p.torchShape], data: t.dataSync() as Float32Array });
        t.dispose();
        weightMap[key] = shardName(i);
        totalSize += p.size * 4;
      }
      writeSafetensors(path.join(tmp, shardName(i)), tensors, { format: 'pt' });
    });
    if (shards.length > 1) {
      const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
      writeFileAtomic(path.join(tmp, INDEX_NAME), `${JSON.stringify(index, null, 2)}\n`);
    }
  });
}

/**
 * Replaces the parameters of `model` named in an EMA file (`ema.safetensors` of a training
 * checkpoint: the averaged trainable weights) by their averages; other parameters keep their values.
 */
export function loadEmaWeights(model: SanaTransformer2DModel, file: string): void {
  const ema = SafetensorsCheckpoint.open(file);
  try {
    // Every averaged key must be the model's; shapes are checked, and only those tensors are read.
    const own = new Set(model.namedParameters().map(([k]) => k));
    const foreign = ema.keys().filter((k) => !own.has(k));
    if (foreign.length) throw new Error(`${file}: ${foreign.map((k) => `"${k}" is not a parameter of the transformer`).join('; ')}`);
    model.loadStateDict(ema, { sourceName: file, strict: false });
  } finally {
    ema.close();
  }
}
