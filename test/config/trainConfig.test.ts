/**
 * Run configs: YAML -> typed TrainConfig with defaults; unknown keys, wrong types and cross-field
 * problems are errors naming the file, the field path and what was expected; `--set` overrides are
 * applied before validation.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadTrainConfig } from '../../src/config/train';
import { ConfigError } from '../../src/config/schema';
import { parseOverride, applyOverrides } from '../../src/config/load';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-config-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

const MINIMAL = `output_dir: runs/x
data:
  path: data/mini
  resolution: 32
train:
  steps: 100
`;

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

test('a minimal config gets SANA defaults', () => {
  const c = loadTrainConfig(write('min.yaml', MINIMAL));
  expect(c.task).toBe('flow');
  expect(c.optimizer).toEqual({ type: 'came', lr: 1e-4, betas: null, eps: null, weight_decay: 0, came_factoring: 'sana', clip_threshold: 1 });
  expect(c.train.gradient_clip).toBe(0.1);
  expect(c.flow.flow_shift).toBe(3);
  expect(c.flow.weighting_scheme).toBe('logit_normal');
  expect(c.data.caption_dropout).toBe(0.1);
  expect(c.data.caption).toEqual({ mode: 'clipscore', threshold: 25, temperature: 0.1, proportions: null });
  expect(c.checkpoint).toEqual({ every: 500, keep_last: 3 });
  expect(c.report_to).toBe('none');
});

test('unknown keys are errors with the path, the allowed keys and a spelling hint', () => {
  const f = write('unknown.yaml', `${MINIMAL}optimizer:\n  learning_rate: 1e-4\n  wieght_decay: 0.1\n`);
  const e = errorOf(() => loadTrainConfig(f));
  expect(e.message).toContain(f);
  expect(e.issues.map((i) => i.path)).toEqual(['optimizer.learning_rate', 'optimizer.wieght_decay']);
  expect(e.message).toMatch(/optimizer\.wieght_decay: expected no such key \(did you mean "weight_decay"\?\)/);
  expect(e.message).toMatch(/allowed: type, lr, betas/);
});

test('wrong types and ranges name the field and what was expected, all at once', () => {
  const f = write('types.yaml', `output_dir: runs/x
data: {path: d, batch_size: 0}
train: {steps: "many", log_every: 2.5}
optimizer: {type: sgd, betas: [0.9, 2]}
validation: {prompts: [a cat, 3]}
`);
  const e = errorOf(() => loadTrainConfig(f));
  const byPath = Object.fromEntries(e.issues.map((i) => [i.path, i]));
  expect(byPath['data.batch_size'].expected).toBe('an integer >= 1');
  expect(byPath['train.steps']).toEqual({ path: 'train.steps', expected: 'an integer >= 1', got: '"many"' });
  expect(byPath['train.log_every'].expected).toBe('an integer >= 1');
  expect(byPath['optimizer.type'].expected).toBe('one of came, adamw');
  expect(byPath['optimizer.betas[1]'].expected).toBe('a number >= 0 <= 1');
  expect(byPath['validation.prompts[1]'].expected).toBe('a string');
  expect(e.message.split('\n')[0]).toBe(`${f}: invalid config (6 problems):`);
});

test('missing required fields are reported', () => {
  const e = errorOf(() => loadTrainConfig(write('req.yaml', 'data: {path: d}\n')));
  expect(e.issues.map((i) => i.path).sort()).toEqual(['output_dir', 'train']);
  expect(e.message).toMatch(/train: expected a mapping \(required\), got nothing/);
});

test('cross-field checks: betas count per optimizer, eps form, validation prompts', () => {
  const f = write('cross.yaml', `${MINIMAL}optimizer: {type: adamw, betas: [0.9, 0.99, 0.999], eps: [1e-30, 1e-16]}\nvalidation: {every: 10}\n`);
  const e = errorOf(() => loadTrainConfig(f));
  expect(e.issues.map((i) => i.path)).toEqual(['optimizer.betas', 'optimizer.eps', 'validation.prompts']);
  expect(e.issues[0].expected).toBe('2 values for adamw');
});

test('--set overrides are parsed as YAML scalars, applied, then validated like the file', () => {
  const f = write('set.yaml', MINIMAL);
  const c = loadTrainConfig(f, ['optimizer.lr=2e-5', 'optimizer.type=adamw', 'optimizer.betas=[0.9, 0.95]', 'validation.prompts[0]=a red shoe', 'validation.every=50', 'model.config.num_layers=2', 'vae.pretrained=~']);
  expect(c.optimizer.lr).toBe(2e-5);
  expect(c.optimizer.type).toBe('adamw');
  expect(c.optimizer.betas).toEqual([0.9, 0.95]);
  expect(c.validation.prompts).toEqual(['a red shoe']);
  expect(c.model.config).toEqual({ num_layers: 2 });
  expect(c.vae.pretrained).toBeNull();
  const e = errorOf(() => loadTrainConfig(f, ['train.stepz=3', 'optimizer.lr=-1']));
  expect(e.issues.map((i) => i.path).sort()).toEqual(['optimizer.lr (from --set)', 'train.stepz (from --set)']);
  expect(() => parseOverride('novalue')).toThrow(/--set: invalid config.*expected key.path=value/s);
  expect(applyOverrides({ a: [1, 2] }, [parseOverride('a.1=5')])).toEqual({ a: [1, 5] });
});

test('unreadable files and YAML syntax errors name the file (and line)', () => {
  expect(() => loadTrainConfig(path.join(dir, 'nope.yaml'))).toThrow(/nope.yaml: invalid config.*expected a readable YAML file, got no such file/s);
  const bad = write('bad.yaml', 'output_dir: x\ndata:\n  path: [unclosed\n');
  expect(() => loadTrainConfig(bad)).toThrow(/bad.yaml: invalid config.*line \d+: expected valid YAML/s);
  const dup = write('dup.yaml', 'output_dir: x\noutput_dir: y\n');
  expect(() => loadTrainConfig(dup)).toThrow(/dup.yaml.*expected valid YAML.*[Mm]ap keys must be unique/s);
});

test('the bundled example configs validate', () => {
  const configs = path.resolve(__dirname, '..', '..', 'configs');
  const files: string[] = [];
  const walk = (d: string) => fs.existsSync(d) && fs.readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.yaml') && files.push(path.join(d, e.name))));
  walk(path.join(configs, 'train'));
  for (const name of ['quickstart', 'autoencoder', 'dit']) files.push(path.join(configs, 'fashion-mnist', `${name}.yaml`));
  for (const f of files) expect(() => loadTrainConfig(f)).not.toThrow();
});
