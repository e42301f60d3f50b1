/**
 * The CLIP BPE tokenizer through `@huggingface/tokenizers`, from a transformers tokenizer folder's
 * `tokenizer.json` (+ `tokenizer_config.json`), e.g. `openai/clip-vit-large-patch14`. The files are
 * read by the caller (io/pretrained/clip.ts): models do not touch the file system.
 *
 * Batches are padded to the longest caption with the pad token (`<|endoftext|>` for the OpenAI
 * tokenizers), attention mask 0 on padding, as `CLIPProcessor(text, padding=True)` does. Captions
 * longer than `maxLength` (77) tokens are cut in one of two ways:
 * - `cut` (default, torchmetrics' CLIPScore): keep the first 77 ids, dropping the end-of-text token;
 * - `keep_eot` (the tokenizer's own truncation=True): keep the start token, the first 75 text tokens
 *   and the end-of-text token.
 */
import { Tokenizer } from '@huggingface/tokenizers';

export type CaptionTruncation = 'cut' | 'keep_eot';

export interface EncodedCaptions {
  /** [N, length] row-major ids. */
  ids: Int32Array;
  /** [N, length] 1 for tokens, 0 for padding. */
  attentionMask: Int32Array;
  length: number;
  /** How many captions were truncated. */
  truncated: number;
}

export class CLIPTokenizer {
  private readonly tok: Tokenizer;
  readonly padId: number;
  readonly eosId: number;

  /** `tokenizerJson` / `tokenizerConfig`: parsed `tokenizer.json` and `tokenizer_config.json`. */
  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}) {
    this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    const tokenName = (v: unknown): string | null => (typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : null);
    const eos = tokenName(tokenizerConfig.eos_token) ?? '<|endoftext|>';
    const eosId = this.tok.token_to_id(eos);
    if (eosId === undefined) throw new Error(`CLIP tokenizer: end-of-text token "${eos}" is not in the vocabulary`);
    this.eosId = eosId;
    const pad = tokenName(tokenizerConfig.pad_token);
    const padId = pad === null ? undefined : this.tok.token_to_id(pad);
    if (pad !== null && padId === undefined) throw new Error(`CLIP tokenizer: pad token "${pad}" is not in the vocabulary`);
    this.padId = padId ?? eosId;
  }

  /** Ids of one caption with start and end tokens, untruncated. */
  encodeOne(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: true }).ids;
  }

  /** A padded batch; see the file header for `truncation`. */
  encode(texts: string[], opts: { maxLength?: number; truncation?: CaptionTruncation } = {}): EncodedCaptions {
    const maxLength = opts.maxLength ?? 77;
    const mode = opts.truncation ?? 'cut';
    let truncated = 0;
    const rows = texts.map((t) => {
      const ids = this.encodeOne(t);
      if (ids.length <= maxLength) return ids;
      truncated++;
      return mode === 'cut' ? ids.slice(0, maxLength) : [...ids.slice(0, maxLength - 1), ids[ids.length - 1]];
    });
    const length = Math.max(1, ...rows.map((r) => r.length));
    const ids = new Int32Array(texts.length * length).fill(this.padId);
    const attentionMask = new Int32Array(texts.length * length);
    rows.forEach((r, i) => {
      ids.set(r, i * length);
      attentionMask.fill(1, i * length, i * length + r.length);
    });
    return { ids, attentionMask, length, truncated };
  }
}
