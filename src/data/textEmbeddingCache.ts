/**
 * Text embeddings computed once per (encoder, prompt, settings) and kept on disk, so sampling and
 * training do not run (or even load) the 2B text encoder for prompts seen before. Plays the role of
 * NVlabs/Sana's pre-extracted caption features, keyed so that a stale entry is never reused:
 *
 *   <dir>/<key[0:2]>/<key>.safetensors
 *
 * `key` = sha256 of the canonical JSON of [format, encoder identity, settings, prompt]: a different
 * encoder (weights, config), tokenizer, instruction text, maximum length or any other setting the
 * caller puts in `settings` gives a different file. Each file holds `prompt_embeds` float32 [L, D] and
 * `prompt_attention_mask` int32 [L], and repeats the encoder identity, settings and prompt in its
 * metadata; an entry whose metadata does not match (a hash collision, a hand-copied file) or that
 * cannot be read is a miss, and the next `put` replaces it. Files are written atomically.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { SafetensorsFile, toFloat32, toInt32, writeSafetensors } from '../io/safetensors';

const FORMAT = 'sana-tfjs-text-embedding/1';

/** One prompt's embedding: `embeds` row-major [length, dim], `mask` [length] (1 = token, 0 = padding). */
export interface TextEmbedding {
  embeds: Float32Array;
  mask: Int32Array;
  length: number;
  dim: number;
}

/** JSON with object keys sorted at every level: equal settings always hash equally. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) return JSON.stringify(String(value));
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj).sort().filter((k) => obj[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export interface TextEmbeddingCacheStats {
  hits: number;
  misses: number;
  writes: number;
}

export class TextEmbeddingCache {
  readonly stats: TextEmbeddingCacheStats = { hits: 0, misses: 0, writes: 0 };

  /**
   * @param dir cache folder (created on the first write).
   * @param encoderIdentity names the encoder's weights and config (e.g. `gemmaEncoderIdentity(dir)`).
   */
  constructor(readonly dir: string, readonly encoderIdentity: string) {
    if (!encoderIdentity) throw new Error('TextEmbeddingCache: encoderIdentity must be a non-empty string');
  }

  /** The hex key of an entry. */
  keyOf(prompt: string, settings: Record<string, unknown>): string {
    return crypto.createHash('sha256').update(canonicalJson([FORMAT, this.encoderIdentity, settings, prompt])).digest('hex');
  }

  /** Where an entry lives (whether or not it exists). */
  fileOf(prompt: string, settings: Record<string, unknown>): string {
    const key = this.keyOf(prompt, settings);
    return path.join(this.dir, key.slice(0, 2), `${key}.safetensors`);
  }

  /** The cached embedding, or null (counted as a miss) when absent, unreadable or not this entry's. */
  get(prompt: string, settings: Record<string, unknown>): TextEmbedding | null {
    const file = this.fileOf(prompt, settings);
    const found = fs.existsSync(file) ? readEntry(file, this.expectedMetadata(prompt, settings)) : null;
    if (found) this.stats.hits++;
    else this.stats.misses++;
    return found;
  }

  /** Stores an embedding (replacing any entry for the same key). */
  put(prompt: string, settings: Record<string, unknown>, value: TextEmbedding): void {
    const { embeds, mask, length, dim } = value;
    if (embeds.length !== length * dim || mask.length !== length) {
      throw new Error(`TextEmbeddingCache.put: embeds has ${embeds.length} values and mask ${mask.length} for [${length}, ${dim}]`);
    }
    writeSafetensors(
      this.fileOf(prompt, settings),
      {
        prompt_embeds: { dtype: 'F32', shape: [length, dim], data: embeds },
        prompt_attention_mask: { dtype: 'I32', shape: [length], data: mask },
      },
      this.expectedMetadata(prompt, settings),
    );
    this.stats.writes++;
  }

  private expectedMetadata(prompt: string, settings: Record<string, unknown>): Record<string, string> {
    return { format: FORMAT, encoder: this.encoderIdentity, settings: canonicalJson(settings), prompt };
  }
}

function readEntry(file: string, expected: Record<string, string>): TextEmbedding | null {
  let f: SafetensorsFile;
  try {
    f = SafetensorsFile.open(file);
  } catch {
    return null;
  }
  try {
    for (const [k, v] of Object.entries(expected)) if (f.metadata[k] !== v) return null;
    if (!f.has('prompt_embeds') || !f.has('prompt_attention_mask')) return null;
    const e = f.read('prompt_embeds');
    const m = f.read('prompt_attention_mask');
    if (e.shape.length !== 2 || m.shape.length !== 1 || m.shape[0] !== e.shape[0]) return null;
    return { embeds: toFloat32(e, file), mask: toInt32(m, file), length: e.shape[0], dim: e.shape[1] };
  } catch {
    return null;
  } finally {
    f.close();
  }
}
