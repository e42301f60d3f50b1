/** Dataset folder formats: manifest.jsonl and plain image + .txt folders; errors name file:line and field. */
import * as fs from 'fs';
import * as path from 'path';
import { DatasetFormatError, readDatasetEntries, readManifest } from '../../src/data/manifest';
import { tempDir, writeJsonl } from './fixtures';

const tmp = tempDir('manifest');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function manifestDir(name: string, lines: unknown[] | string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  if (typeof lines === 'string') fs.writeFileSync(path.join(dir, 'manifest.jsonl'), lines);
  else writeJsonl(path.join(dir, 'manifest.jsonl'), lines);
  return dir;
}

describe('manifest.jsonl', () => {
  test('captions keep file order, scores attach by caption type, paths resolve against the folder', () => {
    const dir = manifestDir('ok', [
      { id: 'a', image: 'img/a.png', captions: { prompt: 'a red dress', short: 'dress', wrong: 'a bag' }, clip_scores: { short: 27.5, prompt: 31, wrong: 12 }, meta: { label: 3 } },
      { image: 'img/sub/b.jpg', caption: 'just one' },
      { id: 'c', image: { pack: 'images.safetensors', index: 4 }, captions: { long: 'x' } },
    ]);
    const { entries, layout } = readDatasetEntries(dir);
    expect(layout).toBe('manifest');
    expect(entries.map((e) => e.id)).toEqual(['a', 'img/sub/b', 'c']);
    expect(entries[0].captions).toEqual([
      { key: 'prompt', text: 'a red dress', clipScore: 31 },
      { key: 'short', text: 'dress', clipScore: 27.5 },
      { key: 'wrong', text: 'a bag', clipScore: 12 },
    ]);
    expect(entries[0].image).toEqual({ kind: 'file', path: path.join(dir, 'img/a.png') });
    expect(entries[0].meta).toEqual({ label: 3 });
    expect(entries[1].captions).toEqual([{ key: 'prompt', text: 'just one' }]);
    expect(entries[2].image).toEqual({ kind: 'pack', path: path.join(dir, 'images.safetensors'), index: 4 });
    expect(entries[0].origin).toBe(`${path.join(dir, 'manifest.jsonl')}:1`);
  });

  test.each([
    ['unknown field', { image: 'a.png', caption: 'x', score: 3 }, /:1: unknown field\(s\) score; allowed: id, image/],
    ['missing image', { caption: 'x' }, /:1: missing "image"/],
    ['missing captions', { image: 'a.png' }, /:1: missing captions/],
    ['both caption forms', { image: 'a.png', caption: 'x', captions: { a: 'y' } }, /either "caption" or "captions"/],
    ['score of no caption', { image: 'a.png', captions: { prompt: 'x' }, clip_scores: { short: 3 } }, /"clip_scores.short" names no caption \(captions: prompt\)/],
    ['non-numeric score', { image: 'a.png', captions: { prompt: 'x' }, clip_scores: { prompt: '31' } }, /"clip_scores.prompt" must be a finite number/],
    ['numeric caption type', { image: 'a.png', captions: { '0': 'x', '1': 'y' } }, /caption type "0" is a number/],
    ['caption not a string', { image: 'a.png', captions: { prompt: 3 } }, /"captions.prompt" must be a string/],
    ['pack without id', { image: { pack: 'p.safetensors', index: 0 }, caption: 'x' }, /pack images need an "id"/],
    ['bad pack index', { id: 'x', image: { pack: 'p.safetensors', index: -1 }, caption: 'x' }, /"image.index" must be a non-negative integer/],
  ])('%s is an error naming file:line and field', (name, line, message) => {
    const dir = manifestDir(`bad-${name.replace(/\W/g, '')}`, [line]);
    expect(() => readDatasetEntries(dir)).toThrow(DatasetFormatError);
    expect(() => readDatasetEntries(dir)).toThrow(message);
  });

  test('invalid JSON names the line; blank lines are ignored', () => {
    const dir = manifestDir('badjson', '{"image": "a.png", "caption": "x"}\n\n{"image": "b.png", caption: y}\n');
    expect(() => readManifest(path.join(dir, 'manifest.jsonl'))).toThrow(/manifest.jsonl:3: invalid JSON/);
  });

  test('duplicate ids name both lines', () => {
    const dir = manifestDir('dup', [{ id: 'x', image: 'a.png', caption: 'a' }, { id: 'y', image: 'b.png', caption: 'b' }, { id: 'x', image: 'c.png', caption: 'c' }]);
    expect(() => readDatasetEntries(dir)).toThrow(/manifest.jsonl:3: duplicate image id "x" \(also at .*manifest.jsonl:1\)/);
  });
});

describe('plain image + .txt folders', () => {
  const dir = path.join(tmp, 'plain');
  beforeAll(() => {
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    for (const f of ['b.png', 'a.jpg', 'sub/c.webp', 'nocap.png']) fs.writeFileSync(path.join(dir, f), 'not decoded here');
    fs.writeFileSync(path.join(dir, 'b.txt'), 'first line is the caption\nsecond line is ignored\n');
    fs.writeFileSync(path.join(dir, 'a.txt'), '  padded  \n');
    fs.writeFileSync(path.join(dir, 'sub/c.txt'), 'in a subfolder');
    fs.writeFileSync(path.join(dir, 'notes.md'), 'ignored');
  });

  test('a missing caption file is an error naming the image, by default', () => {
    expect(() => readDatasetEntries(dir)).toThrow(/nocap.png: no caption file .*nocap.txt .*missing_caption: skip/);
  });

  test('with missingCaption skip, it is a counted skip; the rest read in sorted order with the first line', () => {
    const { entries, skipped, layout } = readDatasetEntries(dir, { missingCaption: 'skip' });
    expect(layout).toBe('folder');
    expect(entries.map((e) => e.id)).toEqual(['a', 'b', 'sub/c']);
    expect(entries.map((e) => e.captions[0].text)).toEqual(['padded', 'first line is the caption', 'in a subfolder']);
    expect(skipped).toEqual([{ id: 'nocap', file: path.join(dir, 'nocap.png'), reason: 'no caption file nocap.txt' }]);
  });

  test('a folder without images or manifest is an error', () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    expect(() => readDatasetEntries(empty)).toThrow(/no images found/);
    expect(() => readDatasetEntries(path.join(tmp, 'does-not-exist'))).toThrow(/dataset folder does not exist/);
  });
});
