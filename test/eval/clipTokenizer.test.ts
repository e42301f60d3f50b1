import * as fs from 'fs';
import * as path from 'path';
import { loadCLIPTokenizer } from '../../src/io/pretrained/clip';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'clip-tokenizer');

interface Encoded {
  input_ids: number[][];
  attention_mask: number[][];
}
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as {
  texts: string[];
  padded: Encoded;
  cut: Encoded;
  keep_eot: Encoded;
  pad_id: number;
  eos_id: number;
};

function rows(flat: Int32Array, length: number): number[][] {
  return Array.from({ length: flat.length / length }, (_, i) => Array.from(flat.subarray(i * length, (i + 1) * length)));
}

describe('CLIP tokenizer (a tiny CLIP-style BPE; ids from transformers)', () => {
  const tok = loadCLIPTokenizer(FIX);

  test('special tokens', () => {
    expect(tok.eosId).toBe(expected.eos_id);
    expect(tok.padId).toBe(expected.pad_id);
  });

  test('untruncated, padded to the longest caption (CLIPProcessor(padding=True))', () => {
    const enc = tok.encode(expected.texts, { maxLength: 1000 });
    expect(rows(enc.ids, enc.length)).toEqual(expected.padded.input_ids);
    expect(rows(enc.attentionMask, enc.length)).toEqual(expected.padded.attention_mask);
    expect(enc.truncated).toBe(0);
  });

  test("cut to 77 positions, as torchmetrics' CLIPScore does", () => {
    const enc = tok.encode(expected.texts);
    expect(enc.length).toBe(77);
    expect(rows(enc.ids, enc.length)).toEqual(expected.cut.input_ids);
    expect(rows(enc.attentionMask, enc.length)).toEqual(expected.cut.attention_mask);
    expect(enc.truncated).toBe(1);
  });

  test("the tokenizer's own truncation (end-of-text kept)", () => {
    const enc = tok.encode(expected.texts, { truncation: 'keep_eot' });
    expect(rows(enc.ids, enc.length)).toEqual(expected.keep_eot.input_ids);
    expect(rows(enc.attentionMask, enc.length)).toEqual(expected.keep_eot.attention_mask);
  });

  test('a folder without tokenizer.json is named', () => {
    expect(() => loadCLIPTokenizer(path.join(FIX, '..'))).toThrow(/fixtures: no tokenizer\.json/);
  });
});
