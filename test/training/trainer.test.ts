/**
 * The training loop: exact resume, no tensor leak across steps, gradient accumulation, NaN guard,
 * checkpoint retention, unwritable run folders.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf } from '../../src/backend';
import { useBackend } from './backend';
import { Trainer, NonFiniteLossError, TrainerSetup } from '../../src/training/trainer';
import { RunFolder, readTrainerState } from '../../src/training/runFolder';
import { AdamW } from '../../src/training/optim/adamw';
import { CAME } from '../../src/training/optim/came';
import { flowObjective, FlowBatch } from '../../src/training/objectives';
import { DEFAULT_TIMESTEP_SAMPLING } from '../../src/training/flow';
import { TrainEvent, LogRecord } from '../../src/training/events';
import { TinyVelocityModel, syntheticBatches, nullCaption, saveTiny, loadTiny } from './tinyModel';

beforeAll(useBackend);

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-trainer-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

interface Opts {
  optimizer?: 'adamw' | 'came';
  accumulation?: number;
  ema?: number | null;
  poisonAt?: number;
  checkpointEvery?: number | null;
  keepLast?: number;
  initSeed?: number;
  logEvery?: number;
}

function build(dir: string, o: Opts = {}) {
  const model = new TinyVelocityModel().initialize(o.initSeed ?? 1);
  const params = model.trainableParameters();
  const optimizer = o.optimizer === 'came' ? new CAME(params, { factoring: 'sana' }) : new AdamW(params, { weightDecay: 0.01 });
  const events: TrainEvent[] = [];
  const batches = syntheticBatches({ poisonAt: o.poisonAt });
  const nul = nullCaption();
  const setup: TrainerSetup<FlowBatch> = {
    params,
    optimizer,
    schedule: { type: 'cosine', baseLr: 1e-2, warmupSteps: 2, totalSteps: 6, minLr: 1e-4 },
    batches,
    objective: flowObjective((i) => model.forward(i), { seed: 5, sampling: DEFAULT_TIMESTEP_SAMPLING, captionDropout: 0.3, nullCaption: nul }),
    totalSteps: 6,
    accumulation: o.accumulation ?? 1,
    gradClip: 0.5,
    emaDecay: o.ema === undefined ? 0.9 : o.ema,
    logEvery: o.logEvery ?? 1,
    checkpointEvery: o.checkpointEvery === undefined ? 2 : o.checkpointEvery,
    keepLast: o.keepLast ?? 2,
    run: RunFolder.open(dir),
    saveModel: (d) => saveTiny(model, d),
    loadModel: (d) => loadTiny(model, d),
    batchSize: 2,
    onEvent: (e) => events.push(e),
  };
  const trainer = new Trainer(setup);
  const dispose = () => {
    trainer.dispose();
    model.dispose();
    tf.dispose([nul.embeds, nul.mask]);
  };
  return { model, trainer, events, batches, setup, dispose };
}

/** The fields that must match bit for bit (timings naturally differ). */
const trajectory = (log: LogRecord[]) => log.map((r) => ({ step: r.step, loss: r.loss, step_loss: r.step_loss, grad_norm: r.grad_norm, lr: r.lr }));

describe.each(['adamw', 'came'] as const)('exact resume with %s', (optimizer) => {
  test('6 steps straight == 3 steps, stop, resume latest, 3 more (accumulation 2, EMA, log window 2)', async () => {
    const opts: Opts = { optimizer, accumulation: 2, logEvery: 2, checkpointEvery: null };
    const straightDir = path.join(tmpRoot, `straight-${optimizer}`);
    const a = build(straightDir, opts);
    await a.trainer.run();
    const straight = a.setup.run.readLog();
    const straightWeights = a.model.stateDict();
    a.dispose();

    const resumedDir = path.join(tmpRoot, `resumed-${optimizer}`);
    const b1 = build(resumedDir, opts);
    const first = await b1.trainer.run({ stopAt: 3 });
    expect(first.step).toBe(3);
    b1.dispose();

    // A fresh process: different initial weights, which the checkpoint must overwrite.
    const b2 = build(resumedDir, { ...opts, initSeed: 77 });
    const ck = b2.setup.run.resolveResume('latest');
    expect(ck.step).toBe(3);
    b2.trainer.resume(ck.dir);
    await b2.trainer.run();
    const resumed = b2.setup.run.readLog();
    const resumedWeights = b2.model.stateDict();
    b2.dispose();

    expect(straight.map((r) => r.step)).toEqual([2, 4, 6]);
    expect(trajectory(resumed)).toEqual(trajectory(straight));
    for (const [k, v] of straightWeights) expect(Array.from(resumedWeights.get(k)!.data)).toEqual(Array.from(v.data));
    expect(straight.every((r) => Number.isFinite(r.loss) && r.loss > 0)).toBe(true);
  });
});

test('log lines written after the resumed checkpoint are replaced, not duplicated', async () => {
  const dir = path.join(tmpRoot, 'truncate');
  const a = build(dir, { checkpointEvery: 2, keepLast: 5 });
  await a.trainer.run({ stopAt: 5 });
  a.dispose();
  const b = build(dir, { checkpointEvery: 2, keepLast: 5 });
  b.trainer.resume(b.setup.run.checkpointDir(2));
  await b.trainer.run();
  expect(b.setup.run.readLog().map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
  b.dispose();
});

test('the tensor count stays flat across training steps and checkpoints', async () => {
  const a = build(path.join(tmpRoot, 'leak'), { optimizer: 'came', accumulation: 2 });
  await a.trainer.run({ stopAt: 2 }); // warm-up: optimizer and EMA state now exist
  const before = tf.memory().numTensors;
  await a.trainer.run({ stopAt: 5 });
  expect(tf.memory().numTensors).toBe(before);
  expect(a.batches.live).toBe(0);
  a.dispose();
});

test('gradient accumulation averages micro-batch gradients (two identical micro-batches == one batch)', async () => {
  const batches = syntheticBatches();
  const run = async (accumulation: number) => {
    const model = new TinyVelocityModel().initialize(3);
    const params = model.trainableParameters();
    // A deterministic objective (no noise draw) on the same batch at every micro-step.
    const objective = (b: FlowBatch) =>
      tf.tidy(() => model.forward({ hiddenStates: b.latents, encoderHiddenStates: b.captionEmbeds, encoderAttentionMask: b.captionMask, timestep: tf.tensor1d([500, 250]) }).sub(b.latents).square().mean() as tf.Scalar);
    const events: TrainEvent[] = [];
    const trainer = new Trainer<FlowBatch>({
      params, optimizer: new AdamW(params), schedule: { type: 'constant', baseLr: 1e-2, warmupSteps: 0, totalSteps: 2, minLr: 0 },
      batches: { get: () => batches.get(0), release: batches.release }, objective,
      totalSteps: 2, accumulation, gradClip: null, emaDecay: null, logEvery: 1, checkpointEvery: null, keepLast: 1,
      run: RunFolder.open(path.join(tmpRoot, `accum-${accumulation}`)), saveModel: () => undefined, loadModel: () => undefined,
      onEvent: (e) => events.push(e),
    });
    await trainer.run();
    trainer.dispose();
    const weights = model.stateDict();
    model.dispose();
    return { steps: events.filter((e) => e.type === 'step') as Array<Extract<TrainEvent, { type: 'step' }>>, weights };
  };
  const one = await run(1);
  const two = await run(2);
  expect(two.steps.map((e) => e.loss)).toEqual(one.steps.map((e) => e.loss));
  expect(two.steps.map((e) => e.gradNorm)).toEqual(one.steps.map((e) => e.gradNorm));
  for (const [k, v] of one.weights) expect(Array.from(two.weights.get(k)!.data)).toEqual(Array.from(v.data));
  expect(batches.live).toBe(0);
});

test('a NaN loss stops the run naming the step and images, before any update or checkpoint', async () => {
  const dir = path.join(tmpRoot, 'nan');
  const a = build(dir, { poisonAt: 4, checkpointEvery: 1, keepLast: 10 }); // micro-step 4 = step 5
  const before = await (async () => {
    await a.trainer.run({ stopAt: 4 });
    return a.model.stateDict();
  })();
  let err: unknown;
  try {
    await a.trainer.run();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(NonFiniteLossError);
  expect((err as Error).message).toMatch(/step 5/);
  expect((err as Error).message).toContain('img-4-0');
  expect((err as NonFiniteLossError).imageIds).toEqual(['img-4-0', 'img-4-1']);
  // Weights untouched, no checkpoint for step 5, the step-4 checkpoint still complete.
  const after = a.model.stateDict();
  for (const [k, v] of before) expect(Array.from(after.get(k)!.data)).toEqual(Array.from(v.data));
  expect(a.setup.run.checkpoints().map((c) => c.step)).toEqual([1, 2, 3, 4]);
  expect(readTrainerState(a.setup.run.checkpointDir(4)).step).toBe(4);
  expect(a.batches.live).toBe(0);
  a.dispose();
});

test('keeps only the last K checkpoints, each complete', async () => {
  const a = build(path.join(tmpRoot, 'keep'), { checkpointEvery: 1, keepLast: 2 });
  await a.trainer.run();
  const cks = a.setup.run.checkpoints();
  expect(cks.map((c) => c.step)).toEqual([5, 6]);
  for (const c of cks) {
    for (const f of ['model/model.safetensors', 'optimizer.safetensors', 'ema.safetensors', 'trainer_state.json']) expect(fs.existsSync(path.join(c.dir, f))).toBe(true);
  }
  expect(fs.readdirSync(a.setup.run.checkpointsDir).filter((n) => n.startsWith('.'))).toEqual([]);
  expect(a.events.filter((e) => e.type === 'checkpoint').length).toBe(6);
  a.dispose();
});

test('an unwritable run folder is a clear error before training', () => {
  const file = path.join(tmpRoot, 'a-file');
  fs.writeFileSync(file, 'x');
  expect(() => RunFolder.open(path.join(file, 'run'))).toThrow(/run folder .*a-file.*run is not writable/);
  expect(() => RunFolder.open(file)).toThrow(/is not writable \(ENOTDIR\)/);
});

test('--resume with a folder that is not a checkpoint says so', () => {
  const run = RunFolder.open(path.join(tmpRoot, 'empty-run'));
  expect(() => run.resolveResume('latest')).toThrow(/has no complete checkpoint/);
  expect(() => run.resolveResume(tmpRoot)).toThrow(/not a checkpoint folder/);
});
