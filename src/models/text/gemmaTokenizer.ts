/**
 * The Gemma tokenizer as transformers' `GemmaTokenizerFast` applies it, over `@huggingface/tokenizers`
 * (a JS port of the Rust `tokenizers` library that reads the same `tokenizer.json`).
 *
 * What this wrapper adds on top of the library is the part transformers does around the Rust
 * tokenizer: special tokens from `tokenizer_config.json` (`add_bos_token` / `add_eos_token`),
 * truncation that keeps the special tokens and cuts the end of the text, and padding to a fixed
 * length on either side. The files are parsed by the caller (see `io/pretrained/gemma.ts`).
 */
import { Tokenizer } from '@huggingface/tokenizers';

export interface TokenizerCallOptions {
  /** Target length for `padding: 'max_length'` and the truncation limit. */
  maxLength?: number;
  /** 'max_length': pad every row to maxLength; 'longest': to the longest row; 'none': no padding (rows must then be equal). */
  padding?: 'max_length' | 'longest' | 'none';
  /** Cut rows longer than maxLength (the end of the text goes, special tokens stay). Default true; no-op without maxLength. */
  truncation?: boolean;
  /** Add <bos> / <eos> as the tokenizer config says. Default true. */
  addSpecialTokens?: boolean;
  /** Where padding goes. Default: the tokenizer config's `padding_side` (SANA sets 'right'). */
  paddingSide?: 'left' | 'right';
}

/** A padded batch, row-major: row r of ids is inputIds.subarray(r * length, (r + 1) * length). */
export interface BatchEncoding {
  inputIds: Int32Array; // [batch * length]
  attentionMask: Int32Array; // [batch * length], 1 = token, 0 = padding
  batch: number;
  length: number;
}

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export class GemmaTokenizer {
  readonly padTokenId: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Number of entries in the vocabulary (added tokens included). */
  readonly vocabSize: number;
  readonly paddingSide: 'left' | 'right';
  private readonly tokenizer: Tokenizer;
  /** Special ids around the text: [prefix..., text..., suffix...]. */
  private readonly prefix: number[];
  private readonly suffix: number[];

  /**
   * @param tokenizerJson parsed `tokenizer.json`.
   * @param tokenizerConfig parsed `tokenizer_config.json` ({} when absent).
   * @param source where the files came from (used in error messages).
   * @param fingerprint a string that changes when the files change (used in cache keys).
   */
  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown>, readonly source = 'tokenizer', readonly fingerprint = '') {
    const tj = tokenizerJson as Record<string, any>;
    if (!tj || typeof tj !== 'object' || typeof tj.model !== 'object' || tj.model === null) {
      throw new TokenizerError(`${source}: tokenizer.json has no "model" object (not a Hugging Face tokenizers file?)`);
    }
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError(`${source}: cannot build the tokenizer (${(e as Error).message})`);
    }
    const idOf = (field: string, fallback: string): number | null => {
      const v = tokenizerConfig[field];
      const content = typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as any).content === 'string' ? (v as any).content : fallback;
      return this.tokenizer.token_to_id(content) ?? null;
    };
    this.bosTokenId = idOf('bos_token', '<bos>');
    this.eosTokenId = idOf('eos_token', '<eos>');
    const pad = idOf('pad_token', '<pad>');
    if (pad === null) throw new TokenizerError(`${source}: the tokenizer has no pad token (needed to pad prompts to a fixed length)`);
    this.padTokenId = pad;
    this.vocabSize = this.tokenizer.get_vocab(true).size;
    const side = tokenizerConfig.padding_side;
    this.paddingSide = side === 'left' ? 'left' : 'right';

    // transformers' Gemma tokenizer rebuilds its post-processor from add_bos_token / add_eos_token
    // (defaults true / false); without those flags, the template in tokenizer.json decides.
    const addBos = tokenizerConfig.add_bos_token;
    const addEos = tokenizerConfig.add_eos_token;
    if (typeof addBos === 'boolean' || typeof addEos === 'boolean') {
      this.prefix = (addBos ?? true) && this.bosTokenId !== null ? [this.bosTokenId] : [];
      this.suffix = addEos === true && this.eosTokenId !== null ? [this.eosTokenId] : [];
    } else {
      const probe = 'a';
      const plain = this.tokenizer.encode(probe, { add_special_tokens: false }).ids;
      const full = this.tokenizer.encode(probe, { add_special_tokens: true }).ids;
      const at = indexOfRun(full, plain);
      if (at < 0) throw new TokenizerError(`${source}: cannot tell which special tokens the post-processor adds`);
      this.prefix = full.slice(0, at);
      this.suffix = full.slice(at + plain.length);
    }
  }

  /** Token ids of one text, without padding or truncation. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    return opts.addSpecialTokens === false ? ids : [...this.prefix, ...ids, ...this.suffix];
  }

  /** Token strings of one text (no special tokens), for inspection. */
  tokenize(text: string): string[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).tokens;
  }

  /** Text of a list of ids. */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** `tokenizer(texts, padding=..., max_length=..., truncation=...)`: a padded batch. */
  call(texts: string[], opts: TokenizerCallOptions = {}): BatchEncoding {
    const { maxLength, padding = 'longest', truncation = true, addSpecialTokens = true, paddingSide = this.paddingSide } = opts;
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 1)) {
      throw new TokenizerError(`${this.source}: maxLength must be a positive integer, got ${maxLength}`);
    }
    if (padding === 'max_length' && maxLength === undefined) {
      throw new TokenizerError(`${this.source}: padding "max_length" needs maxLength`);
    }
    const special = addSpecialTokens ? this.prefix.length + this.suffix.length : 0;
    const rows = texts.map((t) => {
      let ids = this.tokenizer.encode(t, { add_special_tokens: false }).ids;
      if (truncation && maxLength !== undefined && ids.length + special > maxLength) {
        if (maxLength < special) throw new TokenizerError(`${this.source}: maxLength ${maxLength} leaves no room for the ${special} special tokens`);
        ids = ids.slice(0, maxLength - special);
      }
      return addSpecialTokens ? [...this.prefix, ...ids, ...this.suffix] : ids;
    });
    const longest = rows.reduce((m, r) => Math.max(m, r.length), 0);
    let length: number;
    if (padding === 'max_length') length = Math.max(maxLength!, longest);
    else if (padding === 'longest') length = longest;
    else {
      if (rows.some((r) => r.length !== longest)) throw new TokenizerError(`${this.source}: rows of different lengths need padding`);
      length = longest;
    }
    const inputIds = new Int32Array(rows.length * length).fill(this.padTokenId);
    const attentionMask = new Int32Array(rows.length * length);
    rows.forEach((r, i) => {
      const start = i * length + (paddingSide === 'left' ? length - r.length : 0);
      inputIds.set(r, start);
      attentionMask.fill(1, start, start + r.length);
    });
    return { inputIds, attentionMask, batch: rows.length, length };
  }
}

function indexOfRun(haystack: number[], needle: number[]): number {
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (needle.every((x, j) => haystack[i + j] === x)) return i;
  }
  return -1;
}
