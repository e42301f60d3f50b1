/**
 * Holds the layering of src/: imports point one way (cli -> pipelines -> training/eval/data ->
 * models/schedulers/lora -> nn -> backend; io and config serve the upper layers), only src/backend
 * imports @tensorflow/*, and the numeric layers never touch the file system.
 */
import * as fs from 'fs';
import * as path from 'path';

const SRC = path.resolve(__dirname, '..', 'src');

const RANK: Record<string, number> = {
  backend: 0,
  nn: 1,
  models: 2,
  schedulers: 2,
  lora: 2,
  io: 2.5,
  config: 2.5,
  data: 3,
  training: 3,
  eval: 3,
  pipelines: 4,
  golden: 5,
  cli: 5,
};

/** Layers that compute and must stay free of file-system access. */
const NO_FS = new Set(['backend', 'nn', 'models', 'schedulers', 'lora']);

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  const re = /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm;
  for (let m; (m = re.exec(text)); ) out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
  return out;
}

function layerOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0];
}

const all = files(SRC);

test('every top-level folder of src has a rank', () => {
  const layers = new Set(all.map(layerOf).filter((l) => !l.endsWith('.ts')));
  for (const l of layers) expect(Object.keys(RANK)).toContain(l);
});

test('imports never point to a higher layer', () => {
  const bad: string[] = [];
  for (const file of all) {
    const from = layerOf(file);
    for (const spec of imports(file)) {
      if (!spec.startsWith('.')) continue;
      const target = path.resolve(path.dirname(file), spec);
      if (!target.startsWith(SRC)) continue;
      const resolved = fs.existsSync(`${target}.ts`) ? `${target}.ts` : path.join(target, 'index.ts');
      const to = layerOf(resolved);
      if ((RANK[to] ?? 99) > (RANK[from] ?? -1)) bad.push(`${path.relative(SRC, file)} imports ${spec} (${from} -> ${to})`);
    }
  }
  expect(bad).toEqual([]);
});

test('only src/backend imports @tensorflow/*', () => {
  const bad = all.filter((f) => layerOf(f) !== 'backend' && imports(f).some((s) => s.startsWith('@tensorflow/')));
  expect(bad.map((f) => path.relative(SRC, f))).toEqual([]);
});

test('numeric layers do not touch the file system', () => {
  const bad = all.filter((f) => NO_FS.has(layerOf(f)) && layerOf(f) !== 'backend' && imports(f).some((s) => s === 'fs' || s === 'fs/promises' || s === 'node:fs'));
  expect(bad.map((f) => path.relative(SRC, f))).toEqual([]);
});
