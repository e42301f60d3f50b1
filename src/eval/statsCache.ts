/**
 * On-disk cache of a set's feature statistics, so a second evaluation against the same reference set
 * (or of the same samples) skips the feature network.
 *
 * Key: sha256 of (format version, extractor identity, the set's file list with sizes and mtimes, the
 * settings that change features). Value: an `.npz` in pytorch-fid's layout (`mu`, `sigma`, plus `count`)
 * and, for classifiers, the predicted class of each image (`predictions`, in set order). Entries are
 * written atomically, so an interrupted run leaves no half-written entry behind.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readNpz, writeNpz } from '../io/npz';
import { FeatureStats } from './fid';

const CACHE_VERSION = 1;

/** What a cache entry holds. */
export interface CachedStats {
  stats: FeatureStats;
  /** Predicted class per image (classifier extractors), else null. */
  predictions: Int32Array | null;
}

/** `$XDG_CACHE_HOME/sana-tfjs/eval` (or `~/.cache/sana-tfjs/eval`). */
export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'sana-tfjs', 'eval');
}

/** The cache key of a set under an extractor and settings. */
export function statsCacheKey(extractorIdentity: string, fingerprint: readonly string[], settings: Record<string, unknown>): string {
  const text = JSON.stringify({ version: CACHE_VERSION, extractor: extractorIdentity, settings, files: fingerprint });
  return crypto.createHash('sha256').update(text).digest('hex').slice(0, 32);
}

export class StatsCache {
  constructor(readonly dir: string) {}

  file(key: string): string {
    return path.join(this.dir, `${key}.npz`);
  }

  /** The entry for `key`, or null when absent or unreadable (a broken entry is recomputed, not fatal). */
  get(key: string): CachedStats | null {
    const file = this.file(key);
    if (!fs.existsSync(file)) return null;
    try {
      const arrays = readNpz(file);
      const mu = arrays.get('mu');
      const sigma = arrays.get('sigma');
      const count = arrays.get('count');
      if (!mu || !sigma || !count || mu.dtype !== 'f8' || sigma.dtype !== 'f8') return null;
      const dim = mu.shape[0];
      if (sigma.data.length !== dim * dim) return null;
      const pred = arrays.get('predictions');
      return {
        stats: { mu: mu.data as Float64Array, sigma: sigma.data as Float64Array, dim, count: Number(count.data[0]) },
        predictions: pred && pred.dtype === 'i4' ? (pred.data as Int32Array) : null,
      };
    } catch {
      return null;
    }
  }

  set(key: string, entry: CachedStats): string {
    fs.mkdirSync(this.dir, { recursive: true });
    const arrays: Parameters<typeof writeNpz>[1] = {
      mu: { shape: [entry.stats.dim], data: entry.stats.mu },
      sigma: { shape: [entry.stats.dim, entry.stats.dim], data: entry.stats.sigma },
      count: { shape: [], data: new BigInt64Array([BigInt(entry.stats.count)]) },
    };
    if (entry.predictions) arrays.predictions = { shape: [entry.predictions.length], data: entry.predictions };
    const file = this.file(key);
    writeNpz(file, arrays);
    return file;
  }
}
