/**
 * SANA's prompt encoding, mirroring diffusers' `pipelines/sana/pipeline_sana.py`
 * (`SanaPipeline._text_preprocessing`, `_get_gemma_prompt_embeds`, `encode_prompt`):
 *
 * 1. each prompt is lower-cased and stripped (Python's `str.lower().strip()`; `clean_caption` is off);
 * 2. with the complex human instruction (CHI, on by default): the prompt is appended to the CHI lines
 *    joined by "\n", and the joint string is tokenized to num_chi + max_sequence_length - 2 tokens,
 *    where num_chi counts the CHI's own tokens with <bos>; without it, to max_sequence_length tokens.
 *    Either way: <bos> first, no <eos>, right padding with <pad>, truncation cuts the end;
 * 3. Gemma-2 encodes every position; its `last_hidden_state` and the attention mask then keep
 *    position 0 and the last max_sequence_length - 1 positions (`select_index`), i.e. <bos> plus the
 *    window that starts where the prompt does (a no-op without CHI);
 * 4. the negative prompt, and the null caption used for classifier-free guidance and caption dropout,
 *    is encoded the same way but never with the CHI.
 *
 * The CHI text lives in `configs/prompts/complex_human_instruction.yaml`. Embeddings can be kept in a
 * `TextEmbeddingCache`; then the encoder is only loaded (through the loader the caller gives) when a
 * prompt is missing, and can be released as soon as encoding is done.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { tf, Tensor2D, Tensor3D } from '../backend';
import { Gemma2Model, GemmaTokenizer } from '../models/text';
import { TextEmbedding, TextEmbeddingCache } from '../data/textEmbeddingCache';

/** SANA's default maximum prompt length (tokens the transformer sees). */
export const DEFAULT_MAX_SEQUENCE_LENGTH = 300;

/** The YAML file holding the default complex human instruction. */
export const DEFAULT_CHI_FILE = path.resolve(__dirname, '..', '..', 'configs', 'prompts', 'complex_human_instruction.yaml');

/**
 * Reads the instruction lines from a YAML file with one key, `complex_human_instruction: [line, ...]`.
 * An empty list means "no instruction". Errors name the file and the field.
 */
export function loadComplexHumanInstruction(file: string = DEFAULT_CHI_FILE): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read the complex human instruction (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid YAML (${(e as Error).message})`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file}: expected a mapping with the key complex_human_instruction`);
  const unknown = Object.keys(doc).filter((k) => k !== 'complex_human_instruction');
  if (unknown.length) throw new Error(`${file}: unknown field "${unknown[0]}" (expected only complex_human_instruction)`);
  const lines = (doc as Record<string, unknown>).complex_human_instruction;
  if (!Array.isArray(lines)) throw new Error(`${file}: field "complex_human_instruction": expected a list of strings`);
  lines.forEach((l, i) => {
    if (typeof l !== 'string') throw new Error(`${file}: field "complex_human_instruction[${i}]": expected a string, got ${JSON.stringify(l)}`);
  });
  return lines as string[];
}

let defaultChi: string[] | null = null;

/** The default instruction lines (read once from `DEFAULT_CHI_FILE`). */
export function defaultComplexHumanInstruction(): string[] {
  defaultChi ??= loadComplexHumanInstruction();
  return [...defaultChi];
}

/** Characters Python's `str.strip()` removes (`str.isspace()`), which differ from JS `trim()`. */
const PY_WHITESPACE = '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

/** `text.lower().strip()` as Python computes it (SANA's preprocessing with clean_caption off). */
export function preprocessPrompt(text: string): string {
  const lower = text.toLowerCase();
  let start = 0;
  let end = lower.length;
  while (start < end && PY_WHITESPACE.includes(lower[start])) start++;
  while (end > start && PY_WHITESPACE.includes(lower[end - 1])) end--;
  return lower.slice(start, end);
}

export interface PromptEncodingSettings {
  /** Instruction lines; null or [] disables it. Default: `defaultComplexHumanInstruction()`. */
  complexHumanInstruction?: string[] | null;
  /** Tokens kept per prompt. Default 300. */
  maxSequenceLength?: number;
}

export interface ResolvedSettings {
  chi: string[] | null;
  maxSequenceLength: number;
}

function resolveSettings(s: PromptEncodingSettings): ResolvedSettings {
  const msl = s.maxSequenceLength ?? DEFAULT_MAX_SEQUENCE_LENGTH;
  if (!Number.isInteger(msl) || msl < 2) throw new Error(`maxSequenceLength must be an integer >= 2, got ${msl}`);
  const chi = s.complexHumanInstruction === undefined ? defaultComplexHumanInstruction() : s.complexHumanInstruction;
  return { chi: chi && chi.length ? chi : null, maxSequenceLength: msl };
}

/** [0] + the last msl - 1 positions of a sequence of `fullLength` (diffusers' `select_index`). */
export function sanaSelectIndex(fullLength: number, maxSequenceLength: number): number[] {
  if (fullLength < maxSequenceLength) throw new Error(`select_index: sequence of ${fullLength} is shorter than max_sequence_length ${maxSequenceLength}`);
  return [0, ...Array.from({ length: maxSequenceLength - 1 }, (_, i) => fullLength - maxSequenceLength + 1 + i)];
}

/** What the text encoder receives for a batch of prompts, and which positions SANA keeps. */
export interface SanaTokenization {
  /** The preprocessed prompts (without the instruction). */
  texts: string[];
  /** [batch * length] row-major, right-padded. */
  inputIds: Int32Array;
  attentionMask: Int32Array;
  batch: number;
  /** Full length: max_sequence_length, or num_chi + max_sequence_length - 2 with the instruction. */
  length: number;
  /** Tokens of the instruction alone, <bos> included (0 without it). */
  numChiTokens: number;
  /** Positions kept after encoding (max_sequence_length of them). */
  selectIndex: number[];
}

/** Steps 1-2: preprocessing and tokenization exactly as the reference feeds Gemma-2. */
export function tokenizeSanaPrompts(tokenizer: GemmaTokenizer, prompts: string[], settings: PromptEncodingSettings = {}): SanaTokenization {
  const { chi, maxSequenceLength } = resolveSettings(settings);
  const texts = prompts.map(preprocessPrompt);
  let joint = texts;
  let length = maxSequenceLength;
  let numChiTokens = 0;
  if (chi) {
    const chiPrompt = chi.join('\n');
    numChiTokens = tokenizer.encode(chiPrompt).length;
    length = numChiTokens + maxSequenceLength - 2;
    joint = texts.map((t) => chiPrompt + t);
  }
  const enc = tokenizer.call(joint, { padding: 'max_length', maxLength: length, truncation: true, addSpecialTokens: true, paddingSide: 'right' });
  return { texts, inputIds: enc.inputIds, attentionMask: enc.attentionMask, batch: enc.batch, length, numChiTokens, selectIndex: sanaSelectIndex(length, maxSequenceLength) };
}

/** Full outputs of one encoding, for inspection and parity checks. Dispose the tensors. */
export interface SanaPromptEncoding {
  tokenization: SanaTokenization;
  /** [B, length, D]: Gemma-2's last hidden state over all positions. */
  lastHiddenState: Tensor3D;
  /** [B, msl, D]: the kept positions (`prompt_embeds`). */
  promptEmbeds: Tensor3D;
  /** [B, msl] int32 (`prompt_attention_mask`). */
  promptAttentionMask: Tensor2D;
}

/** Steps 1-3 without caching, keeping the intermediate results. */
export function encodeSanaPromptsDetailed(model: Gemma2Model, tokenizer: GemmaTokenizer, prompts: string[], settings: PromptEncodingSettings = {}): SanaPromptEncoding {
  const tok = tokenizeSanaPrompts(tokenizer, prompts, settings);
  checkIdsFit(tok.inputIds, model.config.vocab_size);
  const out = tf.tidy(() => {
    const ids = tf.tensor2d(tok.inputIds, [tok.batch, tok.length], 'int32');
    const mask = tf.tensor2d(tok.attentionMask, [tok.batch, tok.length], 'int32');
    const last = model.forward(ids, mask).lastHiddenState; // [B, L, D]
    const index = tf.tensor1d(tok.selectIndex, 'int32');
    return {
      lastHiddenState: last,
      promptEmbeds: tf.gather(last, index, 1) as Tensor3D, // [B, msl, D]
      promptAttentionMask: tf.gather(mask, index, 1) as Tensor2D, // [B, msl]
    };
  });
  return { tokenization: tok, ...out };
}

function checkIdsFit(ids: Int32Array, vocabSize: number): void {
  let max = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] > max) max = ids[i];
  if (max >= vocabSize) {
    throw new Error(`the tokenizer produced token id ${max} but the text encoder's vocab_size is ${vocabSize}: tokenizer and text encoder do not belong together`);
  }
}

/** Prompt embeddings as the transformer consumes them. Dispose both tensors. */
export interface PromptEmbeddings {
  /** [B, msl, D] float32. */
  promptEmbeds: Tensor3D;
  /** [B, msl] int32, 1 = token, 0 = padding. */
  promptAttentionMask: Tensor2D;
}

export interface SanaPromptEncoderOptions extends PromptEncodingSettings {
  tokenizer: GemmaTokenizer;
  /**
   * The text encoder, or a function that loads it: with a loader, the encoder is only loaded when a
   * prompt is not in the cache, and `release()` frees it.
   */
  textEncoder: Gemma2Model | (() => Gemma2Model);
  /** Reuse embeddings across calls and runs. Its encoder identity must name `textEncoder`'s weights. */
  cache?: TextEmbeddingCache;
  /** Prompts encoded per forward pass (default 8). */
  batchSize?: number;
}

/**
 * Encodes prompts for SANA with an optional on-disk cache: `encode` for prompts (with the instruction),
 * `encodeNegative` for negative prompts and `nullEmbedding` for the empty caption (without it).
 */
export class SanaPromptEncoder {
  readonly tokenizer: GemmaTokenizer;
  readonly settings: ResolvedSettings;
  private model: Gemma2Model | null;
  private readonly loader: (() => Gemma2Model) | null;
  private readonly cache: TextEmbeddingCache | null;
  private readonly batchSize: number;

  constructor(opts: SanaPromptEncoderOptions) {
    this.tokenizer = opts.tokenizer;
    this.settings = resolveSettings(opts);
    this.model = typeof opts.textEncoder === 'function' ? null : opts.textEncoder;
    this.loader = typeof opts.textEncoder === 'function' ? opts.textEncoder : null;
    this.cache = opts.cache ?? null;
    this.batchSize = opts.batchSize ?? 8;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${this.batchSize}`);
  }

  /** Whether the text encoder is in memory. */
  get isLoaded(): boolean {
    return this.model !== null;
  }

  /** Prompts -> [B, msl, D] embeddings and [B, msl] mask, with the instruction when configured. */
  encode(prompts: string[]): PromptEmbeddings {
    return this.toTensors(this.encodeRows(prompts, this.settings));
  }

  /** Negative prompts: never with the instruction (as the reference). Default: one empty prompt. */
  encodeNegative(prompts: string[] = ['']): PromptEmbeddings {
    return this.toTensors(this.encodeRows(prompts, { ...this.settings, chi: null }));
  }

  /** The empty caption's embedding, [1, msl, D]: the unconditional input for guidance and caption dropout. */
  nullEmbedding(): PromptEmbeddings {
    return this.encodeNegative(['']);
  }

  /**
   * Host copies, one [msl, D] embedding and [msl] mask per prompt (for data loaders and caches).
   * `negative: true` encodes without the instruction, as for negative prompts and the null caption.
   */
  encodeToHost(prompts: string[], opts: { negative?: boolean } = {}): TextEmbedding[] {
    return this.encodeRows(prompts, opts.negative ? { ...this.settings, chi: null } : this.settings);
  }

  private encodeRows(prompts: string[], s: ResolvedSettings): TextEmbedding[] {
    const key = this.cacheSettings(s);
    const out: Array<TextEmbedding | null> = prompts.map((p) => (this.cache ? this.cache.get(p, key) : null));
    const missing = prompts.map((p, i) => ({ p, i })).filter(({ i }) => !out[i]);
    for (let start = 0; start < missing.length; start += this.batchSize) {
      const chunk = missing.slice(start, start + this.batchSize);
      const enc = encodeSanaPromptsDetailed(this.ensureModel(), this.tokenizer, chunk.map((c) => c.p), { complexHumanInstruction: s.chi, maxSequenceLength: s.maxSequenceLength });
      const [b, length, dim] = enc.promptEmbeds.shape;
      const embeds = enc.promptEmbeds.dataSync() as Float32Array;
      const masks = enc.promptAttentionMask.dataSync() as Int32Array;
      tf.dispose([enc.lastHiddenState, enc.promptEmbeds, enc.promptAttentionMask]);
      for (let r = 0; r < b; r++) {
        const row: TextEmbedding = {
          embeds: embeds.slice(r * length * dim, (r + 1) * length * dim),
          mask: masks.slice(r * length, (r + 1) * length),
          length,
          dim,
        };
        out[chunk[r].i] = row;
        this.cache?.put(chunk[r].p, key, row);
      }
    }
    return out as TextEmbedding[];
  }

  /** Frees the text encoder (when it came from a loader, the next miss loads it again). */
  release(): void {
    if (!this.model) return;
    if (!this.loader) throw new Error('SanaPromptEncoder.release: the text encoder was given directly (no loader to bring it back); dispose it yourself');
    this.model.dispose();
    this.model = null;
  }

  /** Everything besides the prompt and the encoder's weights that changes an embedding. */
  private cacheSettings(s: ResolvedSettings): Record<string, unknown> {
    return {
      tokenizer: this.tokenizer.fingerprint || this.tokenizer.source,
      complex_human_instruction: s.chi,
      max_sequence_length: s.maxSequenceLength,
      preprocessing: 'lower-strip',
      select: s.chi ? 'bos+last' : 'all',
    };
  }

  private ensureModel(): Gemma2Model {
    if (!this.model) this.model = this.loader!();
    return this.model;
  }

  private toTensors(rows: TextEmbedding[]): PromptEmbeddings {
    if (rows.length === 0) throw new Error('no prompts to encode');
    const { length, dim } = rows[0];
    const embeds = new Float32Array(rows.length * length * dim);
    const mask = new Int32Array(rows.length * length);
    rows.forEach((r, i) => {
      embeds.set(r.embeds, i * length * dim);
      mask.set(r.mask, i * length);
    });
    return {
      promptEmbeds: tf.tensor3d(embeds, [rows.length, length, dim], 'float32'),
      promptAttentionMask: tf.tensor2d(mask, [rows.length, length], 'int32'),
    };
  }
}
