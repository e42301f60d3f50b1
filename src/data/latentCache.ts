/**
 * Latents computed once per image and kept on disk, so training never runs the autoencoder's encoder.
 *
 * Plays the role of NVlabs/Sana's pre-extracted VAE features (`load_vae_feat`, the `.npy` entries of its
 * web datasets), stored as safetensors shards:
 *
 *   <dir>/<encoder key>/encoder.json                      the encoder identity in clear text
 *   <dir>/<encoder key>/<H>x<W>-c<C>/shard-00000.safetensors
 *
 * `<encoder key>` hashes the encoder identity (weights, config, scaling factor: whatever changes its
 * output) and this module's transform version; `<H>x<W>-c<C>` is the bucket size the pixels were fitted
 * to. Inside a shard each tensor is one image's latent, float32 [h, w, c] (NHWC, as the models use it),
 * named by image id; the metadata key `content_hashes` maps each id to the hash of the image it came
 * from, so an edited image is encoded again. Shards are written atomically as encoding goes, so an
 * interrupted build keeps what it finished; a later shard overrides an earlier one for the same id.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { tf, Tensor4D } from '../backend';
import { SafetensorsFile, writeSafetensors, TensorToWrite } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';
import type { Bucket } from './buckets';
import type { ImageDataset } from './dataset';

/** Bump when the pixel transform changes, so old caches are not reused. */
const TRANSFORM_VERSION = 'cover-bicubic-centercrop/1';
const FORMAT = 'sana-tfjs-latents/1';

/** The encoder given by the caller (e.g. an AutoencoderDC's encode, times its scaling factor). */
export interface LatentEncoder {
  /** Names everything that changes the encoder's output: weights, config, scaling factor. */
  identity: string;
  /** [B, H, W, C] pixels in [-1, 1] -> [B, h, w, c] latents as the model consumes them. Must not leak. */
  encode(pixels: Tensor4D): Tensor4D;
}

export interface LatentCacheOptions {
  /** Cache root folder. */
  dir: string;
  /** Images encoded per call (default 8). */
  batchSize?: number;
  /** Images per shard file (default 1024). */
  shardSize?: number;
  /** Called after each encoded batch. */
  onProgress?: (done: number, total: number) => void;
}

interface Location {
  file: string;
  shape: [number, number, number];
}

/** A short stable hash of an identity object or string: for cache keys. */
export function identityHash(identity: unknown): string {
  const text = typeof identity === 'string' ? identity : JSON.stringify(identity);
  return crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function bucketFolder(bucket: Bucket, channels: number): string {
  return `${bucket.height}x${bucket.width}-c${channels}`;
}

export class LatentCache {
  /** Images encoded by `build` (not found in the cache). */
  readonly encoded: number;
  /** Images found in the cache. */
  readonly reused: number;
  readonly root: string;
  private readonly files = new Map<string, SafetensorsFile>();

  private constructor(
    root: string,
    private readonly dataset: ImageDataset,
    private readonly where: Map<string, Location>,
    encoded: number,
    reused: number,
  ) {
    this.root = root;
    this.encoded = encoded;
    this.reused = reused;
  }

  /** The folder of one encoder's cache. */
  static encoderDir(dir: string, encoderIdentity: string): string {
    return path.join(dir, identityHash({ encoder: encoderIdentity, transform: TRANSFORM_VERSION }));
  }

  /**
   * Opens the cache for `dataset` and `encoder`, encoding (and storing) every image not yet cached.
   */
  static async build(dataset: ImageDataset, encoder: LatentEncoder, options: LatentCacheOptions): Promise<LatentCache> {
    const batchSize = options.batchSize ?? 8;
    const shardSize = options.shardSize ?? 1024;
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`latent cache: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(shardSize) || shardSize <= 0) throw new Error(`latent cache: shardSize must be a positive integer, got ${shardSize}`);
    if (!encoder.identity) throw new Error('latent cache: the encoder needs a non-empty identity (weights, config, scaling factor)');
    const root = LatentCache.encoderDir(options.dir, encoder.identity);
    try {
      fs.mkdirSync(root, { recursive: true });
    } catch (e) {
      throw new Error(`latent cache: cannot create ${root} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const idFile = path.join(root, 'encoder.json');
    if (!fs.existsSync(idFile)) writeFileAtomic(idFile, JSON.stringify({ format: FORMAT, encoder: encoder.identity, transform: TRANSFORM_VERSION }, null, 2) + '\n');

    // 1. Group the dataset by bucket folder.
    const groups = new Map<string, number[]>();
    dataset.items.forEach((it, i) => {
      const f = bucketFolder(it.bucket, dataset.channels);
      if (!groups.has(f)) groups.set(f, []);
      groups.get(f)!.push(i);
    });

    const where = new Map<string, Location>();
    let encoded = 0;
    let reused = 0;
    const total = dataset.items.length;
    for (const [folder, indices] of groups) {
      const dir = path.join(root, folder);
      fs.mkdirSync(dir, { recursive: true });
      // 2. What is there: later shards override earlier ones for the same id.
      const found = new Map<string, Location & { hash: string }>();
      const shards = fs.readdirSync(dir).filter((f) => /^shard-\d+\.safetensors$/.test(f)).sort();
      for (const s of shards) {
        const file = path.join(dir, s);
        const f = SafetensorsFile.open(file);
        try {
          let hashes: Record<string, string>;
          try {
            hashes = JSON.parse(f.metadata.content_hashes ?? '{}');
          } catch {
            throw new Error(`latent cache: ${file} has unreadable content_hashes metadata (delete the file to rebuild it)`);
          }
          for (const key of f.keys()) {
            const info = f.info(key);
            if (info.dtype !== 'F32' || info.shape.length !== 3) throw new Error(`latent cache: ${file}: "${key}" must be F32 [h, w, c], got ${info.dtype} [${info.shape}]`);
            found.set(key, { file, shape: info.shape as [number, number, number], hash: hashes[key] ?? '' });
          }
        } finally {
          f.close();
        }
      }
      const todo: number[] = [];
      for (const i of indices) {
        const it = dataset.items[i];
        const hit = found.get(it.id);
        if (hit && hit.hash === it.contentHash) {
          where.set(it.id, { file: hit.file, shape: hit.shape });
          reused++;
        } else {
          todo.push(i);
        }
      }
      // 3. Encode what is missing, writing a shard every `shardSize` images.
      let nextShard = shards.length ? Number(shards[shards.length - 1].match(/\d+/)![0]) + 1 : 0;
      let pending = new Map<string, TensorToWrite>();
      let pendingHashes: Record<string, string> = {};
      const flush = (): void => {
        if (pending.size === 0) return;
        const file = path.join(dir, `shard-${String(nextShard++).padStart(5, '0')}.safetensors`);
        writeSafetensors(file, pending, { format: FORMAT, encoder: encoder.identity, bucket: folder, layout: 'NHWC', content_hashes: JSON.stringify(pendingHashes) });
        for (const [id, t] of pending) where.set(id, { file, shape: t.shape as [number, number, number] });
        pending = new Map();
        pendingHashes = {};
      };
      for (let start = 0; start < todo.length; start += batchSize) {
        const chunk = todo.slice(start, start + batchSize);
        const pixels = await dataset.pixels(chunk);
        let latents: Tensor4D;
        try {
          latents = encoder.encode(pixels);
        } finally {
          pixels.dispose();
        }
        let data: Float32Array;
        const shape = latents.shape;
        try {
          if (shape.length !== 4 || shape[0] !== chunk.length) {
            throw new Error(`latent cache: encoder "${encoder.identity}" returned shape [${shape}] for ${chunk.length} images; expected [${chunk.length}, h, w, c]`);
          }
          data = (await latents.data()) as Float32Array;
        } finally {
          latents.dispose();
        }
        const per = shape[1] * shape[2] * shape[3];
        chunk.forEach((i, j) => {
          const it = dataset.items[i];
          pending.set(it.id, { dtype: 'F32', shape: [shape[1], shape[2], shape[3]], data: data.slice(j * per, (j + 1) * per) });
          pendingHashes[it.id] = it.contentHash;
        });
        encoded += chunk.length;
        if (pending.size >= shardSize) flush();
        options.onProgress?.(reused + encoded, total);
      }
      flush();
    }
    return new LatentCache(root, dataset, where, encoded, reused);
  }

  /** Latent shape [h, w, c] of item `index`. */
  shapeOf(index: number): [number, number, number] {
    const it = this.dataset.items[index];
    const loc = it && this.where.get(it.id);
    if (!loc) throw new Error(`latent cache ${this.root}: no latent for item ${index}${it ? ` (id ${it.id})` : ''}`);
    return loc.shape;
  }

  private file(name: string): SafetensorsFile {
    let f = this.files.get(name);
    if (!f) this.files.set(name, (f = SafetensorsFile.open(name)));
    return f;
  }

  /** Latents of items `indices` (all of one bucket): [B, h, w, c] float32. */
  read(indices: readonly number[]): Tensor4D {
    if (indices.length === 0) throw new Error(`latent cache ${this.root}: read() needs at least one item`);
    const shape = this.shapeOf(indices[0]);
    const per = shape[0] * shape[1] * shape[2];
    const host = new Float32Array(indices.length * per);
    indices.forEach((i, j) => {
      const s = this.shapeOf(i);
      if (s[0] !== shape[0] || s[1] !== shape[1] || s[2] !== shape[2]) {
        throw new Error(`latent cache ${this.root}: item ${i} has latent [${s}], item ${indices[0]} has [${shape}] (batches hold one bucket)`);
      }
      const id = this.dataset.items[i].id;
      host.set(this.file(this.where.get(id)!.file).readFloat32(id), j * per);
    });
    return tf.tidy(() => tf.tensor4d(host, [indices.length, ...shape]));
  }

  /** Closes the shard files. */
  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}
