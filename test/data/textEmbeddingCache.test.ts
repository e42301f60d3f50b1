/**
 * The on-disk text-embedding cache: round trip, keys that change with every part of the identity,
 * stale or damaged entries read as misses, atomic files.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TextEmbedding, TextEmbeddingCache, canonicalJson } from '../../src/data/textEmbeddingCache';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'text-cache-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SETTINGS = { tokenizer: 'tok-a', complex_human_instruction: ['Line one', 'User Prompt: '], max_sequence_length: 4 };

function entry(seed: number): TextEmbedding {
  const embeds = Float32Array.from({ length: 4 * 3 }, (_, i) => Math.fround(Math.sin(seed + i) * 3));
  return { embeds, mask: Int32Array.from([1, 1, 0, 0]), length: 4, dim: 3 };
}

test('put then get returns the same values, bit for bit', () => {
  const cache = new TextEmbeddingCache(tmp, 'enc-1');
  expect(cache.get('a fox', SETTINGS)).toBeNull();
  cache.put('a fox', SETTINGS, entry(1));
  const got = cache.get('a fox', SETTINGS)!;
  expect(Buffer.from(got.embeds.buffer).equals(Buffer.from(entry(1).embeds.buffer))).toBe(true);
  expect(Array.from(got.mask)).toEqual([1, 1, 0, 0]);
  expect([got.length, got.dim]).toEqual([4, 3]);
  expect(cache.stats).toEqual({ hits: 1, misses: 1, writes: 1 });
  // a second cache object on the same folder sees it (persistence across runs)
  expect(new TextEmbeddingCache(tmp, 'enc-1').get('a fox', SETTINGS)).not.toBeNull();
});

test('the encoder, the prompt and every setting are part of the key', () => {
  const cache = new TextEmbeddingCache(tmp, 'enc-1');
  cache.put('a fox', SETTINGS, entry(1));
  expect(new TextEmbeddingCache(tmp, 'enc-2').get('a fox', SETTINGS)).toBeNull();
  expect(cache.get('a fox ', SETTINGS)).toBeNull();
  expect(cache.get('a fox', { ...SETTINGS, max_sequence_length: 5 })).toBeNull();
  expect(cache.get('a fox', { ...SETTINGS, complex_human_instruction: ['Line one!', 'User Prompt: '] })).toBeNull();
  expect(cache.get('a fox', { ...SETTINGS, complex_human_instruction: null })).toBeNull();
  expect(cache.get('a fox', { ...SETTINGS, tokenizer: 'tok-b' })).toBeNull();
  // key order of the settings object does not matter
  expect(cache.get('a fox', { max_sequence_length: 4, complex_human_instruction: ['Line one', 'User Prompt: '], tokenizer: 'tok-a' })).not.toBeNull();
});

test('a damaged or foreign entry is a miss and is replaced by the next put', () => {
  const cache = new TextEmbeddingCache(tmp, 'enc-1');
  cache.put('a fox', SETTINGS, entry(1));
  const file = cache.fileOf('a fox', SETTINGS);
  fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 40)); // truncated
  expect(cache.get('a fox', SETTINGS)).toBeNull();
  // an entry of another prompt copied over this key: metadata disagrees
  cache.put('a cat', SETTINGS, entry(2));
  fs.copyFileSync(cache.fileOf('a cat', SETTINGS), file);
  expect(cache.get('a fox', SETTINGS)).toBeNull();
  cache.put('a fox', SETTINGS, entry(3));
  expect(Array.from(cache.get('a fox', SETTINGS)!.embeds)).toEqual(Array.from(entry(3).embeds));
});

test('entries are spread over two-character folders and no temporary file is left behind', () => {
  const cache = new TextEmbeddingCache(tmp, 'enc-1');
  for (let i = 0; i < 5; i++) cache.put(`prompt ${i}`, SETTINGS, entry(i));
  const files = fs.readdirSync(tmp, { recursive: true }).map(String).filter((f) => f.endsWith('.safetensors') || f.includes('.tmp'));
  expect(files.length).toBe(5);
  for (const f of files) expect(f).toMatch(/^[0-9a-f]{2}[/\\][0-9a-f]{64}\.safetensors$/);
});

test('inconsistent sizes and an empty identity are errors', () => {
  expect(() => new TextEmbeddingCache(tmp, '')).toThrow(/encoderIdentity must be a non-empty string/);
  const cache = new TextEmbeddingCache(tmp, 'enc-1');
  expect(() => cache.put('x', SETTINGS, { ...entry(1), dim: 4 })).toThrow(/embeds has 12 values and mask 4 for \[4, 4\]/);
});

test('canonical JSON sorts keys at every level', () => {
  expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"e":3,"f":2}]},"b":1}');
  expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
});
