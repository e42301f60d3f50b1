/**
 * `runTraining` end to end on a tiny real setup: a folder of PNG + caption pairs, a tiny
 * SanaTransformer2DModel in pixel space, the tiny Gemma-2 text encoder of the golden pipeline case and
 * the real Gemma tokenizer. Checks exact resume through the whole stack and the checkpoint layout.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as YAML from 'yaml';
import { useTestBackend, goldenCase } from '../helpers';
import { loadTrainConfig } from '../../src/config/train';
import { runTraining, trajectoryDigest } from '../../src/pipelines/train';
import { RunFolder } from '../../src/training/runFolder';
import { TrainEvent } from '../../src/training/events';
import { readJsonFile } from '../../src/io/json';

beforeAll(useTestBackend);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-train-pipeline-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function makeDataset(dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const colours = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]];
  for (let i = 0; i < colours.length; i++) {
    const [r, g, b] = colours[i];
    await sharp({ create: { width: 20, height: 16, channels: 3, background: { r, g, b } } }).png().toFile(path.join(dir, `img${i}.png`));
    fs.writeFileSync(path.join(dir, `img${i}.txt`), `a ${['red', 'green', 'blue', 'yellow'][i]} square`);
  }
}

function writeConfig(name: string, data: string, out: string): string {
  const file = path.join(root, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify({
    output_dir: out,
    seed: 3,
    model: { preset: 'tiny', config: { in_channels: 3, out_channels: 3, caption_channels: 8 } },
    text_encoder: { pretrained: goldenCase('sana_pipeline_tiny/text_encoder'), max_length: 12, complex_human_instruction: false },
    data: { path: data, resolution: 16, batch_size: 2, caption_dropout: 0.5, cache_dir: path.join(root, 'cache') },
    optimizer: { type: 'came', lr: 1e-3 },
    lr_schedule: { type: 'cosine', warmup_steps: 1 },
    train: { steps: 4, log_every: 1, ema_decay: 0.9 },
    checkpoint: { every: 2, keep_last: 2 },
  }));
  return file;
}

const trajectory = (run: string) => RunFolder.open(run).readLog().map((r) => [r.step, r.loss, r.grad_norm, r.lr]);

test('4 steps straight == 2 steps + resume latest + 2 steps; checkpoints in diffusers layout', async () => {
  const data = path.join(root, 'data');
  await makeDataset(data);
  const straightDir = path.join(root, 'straight');
  const cfgA = loadTrainConfig(writeConfig('a', data, straightDir));
  const events: TrainEvent[] = [];
  const a = await runTraining({ config: cfgA, configText: YAML.stringify(cfgA), onEvent: (e) => events.push(e) });
  expect(a.step).toBe(4);

  const resumedDir = path.join(root, 'resumed');
  const cfgB = loadTrainConfig(writeConfig('b', data, resumedDir));
  const b1 = await runTraining({ config: cfgB, configText: YAML.stringify(cfgB), stopAt: 2 });
  expect(b1.step).toBe(2);
  const b2 = await runTraining({ config: cfgB, configText: YAML.stringify(cfgB), resume: 'latest' });
  expect(b2.step).toBe(4);

  expect(trajectory(resumedDir)).toEqual(trajectory(straightDir));
  const log = RunFolder.open(straightDir).readLog();
  expect(log.map((r) => r.step)).toEqual([1, 2, 3, 4]);
  expect(log.every((r) => Number.isFinite(r.loss) && r.loss > 0)).toBe(true);

  const ck = a.checkpoint!;
  expect(path.basename(ck)).toBe('step-00000004');
  const cfgJson = readJsonFile(path.join(ck, 'transformer', 'config.json'));
  expect(cfgJson._class_name).toBe('SanaTransformer2DModel');
  expect(cfgJson.in_channels).toBe(3);
  for (const f of ['transformer/diffusion_pytorch_model.safetensors', 'optimizer.safetensors', 'ema.safetensors', 'trainer_state.json']) expect(fs.existsSync(path.join(ck, f))).toBe(true);
  expect(RunFolder.open(straightDir).checkpoints().map((c) => c.step)).toEqual([2, 4]);
  expect(fs.existsSync(path.join(straightDir, 'config.yaml'))).toBe(true);
  expect(events.some((e) => e.type === 'message' && /4 images/.test(e.text))).toBe(true);
}, 300000);

test('a flow run without a text encoder, and an unwritable output_dir, are clear errors', async () => {
  const data = path.join(root, 'data2');
  await makeDataset(data);
  const cfg = loadTrainConfig(writeConfig('c', data, path.join(root, 'c')), ['text_encoder.pretrained=~']);
  await expect(runTraining({ config: cfg, configText: '' })).rejects.toThrow(/flow training needs a text encoder: set text_encoder.pretrained .* or text_encoder.config/);
  const blocker = path.join(root, 'blocker');
  fs.writeFileSync(blocker, '');
  const cfg2 = loadTrainConfig(writeConfig('d', data, path.join(blocker, 'run')));
  await expect(runTraining({ config: cfg2, configText: '' })).rejects.toThrow(/run folder .* is not writable/);
});

test('the resume digest ignores the step count unless the LR schedule follows it', () => {
  const data = path.join(root, 'digest-data');
  const digest = (schedule: string, steps: number, logEvery = 1) =>
    trajectoryDigest(loadTrainConfig(writeConfig('digest', data, path.join(root, 'digest')), [`lr_schedule.type=${schedule}`, `train.steps=${steps}`, `train.log_every=${logEvery}`]));
  // Constant LR: a longer run follows the same trajectory, so extending with --resume is not a change.
  expect(digest('constant', 4)).toBe(digest('constant', 40));
  expect(digest('constant', 4)).toBe(digest('constant', 4, 5));
  // Cosine decays to train.steps: a different total is a different trajectory.
  expect(digest('cosine', 4)).not.toBe(digest('cosine', 40));
  expect(digest('cosine', 4)).not.toBe(digest('constant', 4));
});
