/**
 * SANA prompt encoding against the reference pipeline (sana_pipeline_tiny: tokenizer output, Gemma-2
 * last hidden state, the select_index window, the negative prompt), the instruction file, the
 * embedding cache in use (hits, misses on changed settings, no encoder load when everything is cached),
 * releasing the encoder, and leaks.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf, Tensor } from '../../src/backend';
import { loadCase, GoldenCase } from '../../src/golden/case';
import { compareTensor, toleranceFor } from '../../src/golden/compare';
import { HostTensor } from '../../src/io/safetensors';
import { gemmaEncoderIdentity, loadGemma2Model, loadGemmaTokenizer } from '../../src/io/pretrained/gemma';
import { Gemma2Model, GemmaTokenizer } from '../../src/models/text';
import { TextEmbeddingCache } from '../../src/data/textEmbeddingCache';
import {
  DEFAULT_CHI_FILE,
  SanaPromptEncoder,
  defaultComplexHumanInstruction,
  encodeSanaPromptsDetailed,
  loadComplexHumanInstruction,
  preprocessPrompt,
  sanaSelectIndex,
  tokenizeSanaPrompts,
} from '../../src/pipelines/promptEncoding';
import { expectNoLeak, goldenCase, useTestBackend } from '../helpers';

const PIPE = goldenCase('sana_pipeline_tiny');
const TOKENIZATION = JSON.parse(fs.readFileSync(path.join(goldenCase('gemma_tokenizer'), 'tokenization.json'), 'utf8'));

let c: GoldenCase;
let tokenizer: GemmaTokenizer;
let model: Gemma2Model;
let tmp: string;

beforeAll(async () => {
  await useTestBackend();
  c = loadCase(PIPE);
  tokenizer = loadGemmaTokenizer();
  model = loadGemma2Model(c.file('text_encoder'));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prompt-enc-'));
});
afterAll(() => {
  model.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function expectClose(name: string, got: Tensor | Int32Array, shape?: number[]): void {
  const ref = c.io.get(name) as HostTensor;
  const data = ArrayBuffer.isView(got) ? (got as Int32Array) : ((got as Tensor).dataSync() as Float32Array | Int32Array);
  const tol = toleranceFor(c.spec, name) ?? { metric: 'exact' as const, atol: 0, rtol: 0 };
  const r = compareTensor(name, data, ref, tol, shape ?? (got as Tensor).shape);
  expect({ name, ok: r.ok, note: r.note }).toEqual({ name, ok: true, note: undefined });
}

describe('parity with diffusers SanaPipeline.encode_prompt', () => {
  test.each([
    ['chi', {}],
    ['nochi', { complexHumanInstruction: null }],
  ])('%s: ids, mask, full last hidden state and the kept window', (run, settings) => {
    const prompt: string[] = c.spec.pipeline_args.prompt;
    const e = encodeSanaPromptsDetailed(model, tokenizer, prompt, { ...settings, maxSequenceLength: c.spec.pipeline_args.max_sequence_length });
    const t = e.tokenization;
    expectClose(`${run}.text_input_ids`, t.inputIds, [t.batch, t.length]);
    expectClose(`${run}.text_attention_mask`, t.attentionMask, [t.batch, t.length]);
    expectClose(`${run}.text_encoder_last_hidden_state`, e.lastHiddenState);
    expectClose(`${run}.prompt_embeds`, e.promptEmbeds);
    expectClose(`${run}.prompt_attention_mask`, e.promptAttentionMask);
    expect(e.promptAttentionMask.dtype).toBe('int32');
    tf.dispose([e.lastHiddenState, e.promptEmbeds, e.promptAttentionMask]);
  });

  test('negative prompt and null embedding: no instruction, max_sequence_length positions', () => {
    const enc = new SanaPromptEncoder({ tokenizer, textEncoder: model });
    const neg = enc.encodeNegative();
    expectClose('negative_prompt_embeds', neg.promptEmbeds);
    expectClose('negative_prompt_attention_mask', neg.promptAttentionMask);
    const nul = enc.nullEmbedding();
    expect(nul.promptEmbeds.shape).toEqual([1, 300, 8]);
    expect(Array.from(nul.promptEmbeds.dataSync())).toEqual(Array.from(neg.promptEmbeds.dataSync()));
    tf.dispose([neg.promptEmbeds, neg.promptAttentionMask, nul.promptEmbeds, nul.promptAttentionMask]);
  });

  test('the batch encoder gives the same embeddings as the detailed path', () => {
    const enc = new SanaPromptEncoder({ tokenizer, textEncoder: model });
    const out = enc.encode(['a red fox in the snow', 'A Cat Sleeping']);
    expect(out.promptEmbeds.shape).toEqual([2, 300, 8]);
    expect(out.promptAttentionMask.shape).toEqual([2, 300]);
    const first = tf.tidy(() => out.promptEmbeds.slice([0, 0, 0], [1, 300, 8]));
    expectClose('chi.prompt_embeds', first);
    tf.dispose([first, out.promptEmbeds, out.promptAttentionMask]);
  });
});

describe('tokenization rules', () => {
  test('all prompts of the tokenizer case, with and without the instruction', () => {
    const prompts = TOKENIZATION.entries.map((e: any) => e.prompt);
    const withChi = tokenizeSanaPrompts(tokenizer, prompts);
    expect(withChi.numChiTokens).toBe(TOKENIZATION.num_chi_prompt_tokens);
    expect(withChi.length).toBe(TOKENIZATION.max_length_all);
    TOKENIZATION.entries.forEach((e: any, i: number) => {
      const row = (a: Int32Array) => Array.from(a.subarray(i * withChi.length, (i + 1) * withChi.length));
      expect(row(withChi.inputIds)).toEqual(e.chi.full_input_ids);
      expect(withChi.selectIndex.map((p) => withChi.inputIds[i * withChi.length + p])).toEqual(e.chi.input_ids);
    });
    const plain = tokenizeSanaPrompts(tokenizer, prompts, { complexHumanInstruction: [] });
    expect(plain.length).toBe(300);
    TOKENIZATION.entries.forEach((e: any, i: number) => expect(Array.from(plain.inputIds.subarray(i * 300, (i + 1) * 300))).toEqual(e.no_chi.input_ids));
  });

  test('select_index keeps position 0 and the last msl - 1', () => {
    expect(sanaSelectIndex(10, 4)).toEqual([0, 7, 8, 9]);
    expect(sanaSelectIndex(4, 4)).toEqual([0, 1, 2, 3]);
    expect(() => sanaSelectIndex(3, 4)).toThrow(/shorter than max_sequence_length/);
  });

  test('a different max_sequence_length changes the lengths', () => {
    const t = tokenizeSanaPrompts(tokenizer, ['a red fox'], { maxSequenceLength: 20 });
    expect(t.length).toBe(TOKENIZATION.num_chi_prompt_tokens + 18);
    expect(t.selectIndex.length).toBe(20);
  });

  test('preprocessing is Python lower().strip()', () => {
    for (const e of TOKENIZATION.entries) expect(preprocessPrompt(e.prompt)).toBe(e.preprocessed);
    // Python strips \x1c-\x1f and \x85 but not the BOM; JS trim() does the opposite.
    expect(preprocessPrompt('\x1c\x85 A Fox \u3000')).toBe('a fox');
    expect(preprocessPrompt('\ufeffA')).toBe('\ufeffa');
    expect(preprocessPrompt('ΟΔΟΣ')).toBe('οδος');
  });

  test('token ids beyond the encoder vocabulary are an error', () => {
    const small = new Gemma2Model({ ...model.config, vocab_size: 100, num_hidden_layers: 1, layer_types: ['full_attention'] });
    expect(() => encodeSanaPromptsDetailed(small, tokenizer, ['a red fox'])).toThrow(/vocab_size is 100: tokenizer and text encoder do not belong together/);
  });
});

describe('complex human instruction file', () => {
  test('the default file holds the reference instruction', () => {
    expect(defaultComplexHumanInstruction()).toEqual(TOKENIZATION.complex_human_instruction);
    expect(loadComplexHumanInstruction(DEFAULT_CHI_FILE).join('\n')).toBe(TOKENIZATION.chi_prompt);
  });

  test.each([
    ['missing.yaml', null, /missing\.yaml: cannot read the complex human instruction \(ENOENT\)/],
    ['list.yaml', '- a\n- b\n', /list\.yaml: expected a mapping/],
    ['typo.yaml', 'complex_human_instructions: [a]\n', /typo\.yaml: unknown field "complex_human_instructions"/],
    ['num.yaml', 'complex_human_instruction: [a, 3]\n', /num\.yaml: field "complex_human_instruction\[1\]": expected a string/],
    ['bad.yaml', 'complex_human_instruction: [a\n', /bad\.yaml: invalid YAML/],
  ])('%s is a clear error', (name, text, message) => {
    const file = path.join(tmp, name);
    if (text !== null) fs.writeFileSync(file, text);
    expect(() => loadComplexHumanInstruction(file)).toThrow(message);
  });
});

describe('with the embedding cache', () => {
  const identity = () => gemmaEncoderIdentity(c.file('text_encoder'));

  test('a repeated prompt hits the cache; a new instruction or max length misses it', () => {
    const cache = new TextEmbeddingCache(path.join(tmp, 'cache1'), identity());
    const make = (settings = {}) => new SanaPromptEncoder({ tokenizer, textEncoder: model, cache, ...settings });
    const first = make().encodeToHost(['a red fox in the snow']);
    expect(cache.stats).toEqual({ hits: 0, misses: 1, writes: 1 });
    const again = make().encodeToHost(['a red fox in the snow']);
    expect(cache.stats).toEqual({ hits: 1, misses: 1, writes: 1 });
    expect(Buffer.from(again[0].embeds.buffer).equals(Buffer.from(first[0].embeds.buffer))).toBe(true);
    expect(Array.from(again[0].mask)).toEqual(Array.from(first[0].mask));

    make({ complexHumanInstruction: ['Describe the image.', 'User Prompt: '] }).encodeToHost(['a red fox in the snow']);
    expect(cache.stats.misses).toBe(2);
    make({ maxSequenceLength: 120 }).encodeToHost(['a red fox in the snow']);
    expect(cache.stats.misses).toBe(3);
    make().encodeNegative().promptEmbeds.dispose();
    expect(cache.stats.misses).toBe(4); // no instruction for the negative prompt: its own entry
    // the prompt is part of the key: same text after preprocessing is still a different entry
    make().encodeToHost(['A red fox in the snow']);
    expect(cache.stats.misses).toBe(5);
  });

  test('when every prompt is cached the encoder is never loaded; release() frees it', () => {
    const cache = new TextEmbeddingCache(path.join(tmp, 'cache2'), identity());
    let loads = 0;
    const loader = () => {
      loads++;
      return loadGemma2Model(c.file('text_encoder'));
    };
    const enc = new SanaPromptEncoder({ tokenizer, textEncoder: loader, cache });
    const before = tf.memory().numTensors;
    const out = enc.encode(['a red fox in the snow']);
    expect(loads).toBe(1);
    expect(enc.isLoaded).toBe(true);
    enc.release();
    expect(enc.isLoaded).toBe(false);
    tf.dispose([out.promptEmbeds, out.promptAttentionMask]);
    expect(tf.memory().numTensors).toBe(before);

    const enc2 = new SanaPromptEncoder({ tokenizer, textEncoder: loader, cache });
    const cached = enc2.encode(['a red fox in the snow']);
    expect(loads).toBe(1);
    expect(enc2.isLoaded).toBe(false);
    expectClose('chi.prompt_embeds', cached.promptEmbeds);
    tf.dispose([cached.promptEmbeds, cached.promptAttentionMask]);
  });

  test('release() of an encoder given directly is refused (the caller owns it)', () => {
    expect(() => new SanaPromptEncoder({ tokenizer, textEncoder: model }).release()).toThrow(/dispose it yourself/);
  });
});

test('encoding leaks no tensor', async () => {
  const enc = new SanaPromptEncoder({ tokenizer, textEncoder: model, complexHumanInstruction: null });
  await expectNoLeak(() => {
    const out = enc.encode(['a red fox', 'a cat']);
    tf.dispose([out.promptEmbeds, out.promptAttentionMask]);
    const d = encodeSanaPromptsDetailed(model, tokenizer, ['a dog'], { complexHumanInstruction: null });
    tf.dispose([d.lastHiddenState, d.promptEmbeds, d.promptAttentionMask]);
  });
});
