/**
 * `npm run bench`: speed of this machine's backends on one small SANA configuration, as JSON.
 *
 * Every backend runs in its own child process (one backend per process, so each reports its own peak
 * RSS and no backend's start-up disturbs another's timings). Per backend: a 1024^3 matmul in GFLOP/s,
 * then for the bench model (`SanaTransformer2DModel`, 8 heads x 32 = hidden 256, 4 layers, 8 cross
 * heads x 32, mlp_ratio 2.5, caption_channels 2304, 32 latent channels at 16x16, 32 text tokens of
 * which some are padding, batch 4): AdamW train steps/s, forward ms, and seconds per image for 20
 * Flow-DPM-Solver steps with classifier-free guidance plus a decode by a small DC-AE. The pure-JS
 * `cpu` backend runs the matmul only (a training step there takes minutes).
 * `scripts/bench_torch.py` measures the same things with diffusers' model in PyTorch.
 *
 *   npm run bench                          all available backends
 *   npm run bench -- --backends wasm       some of them
 *   npm run bench -- --steps 20            more timed training steps
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { tf, initBackend, describeBackend, Tensor } from '../src/backend';
import { Parameter, rngFor, valueAndGrads } from '../src/nn';
import { SanaTransformer2DModel } from '../src/models/dit';
import { sanaTransformerPreset } from '../src/models/dit/presets';
import { AutoencoderDC, autoencoderDCPreset } from '../src/models/dcae';
import { AdamW } from '../src/training/optim';
import { flowDpmSolverSchedule, parseFlowDpmSolverConfig, sampleFlowDpmSolver } from '../src/schedulers';

/** The bench model: the `bench` preset (hidden 256, 8 heads x 32, 4 layers; 5.33M parameters). */
export const BENCH_TRANSFORMER = sanaTransformerPreset('bench');

/**
 * A small DC-AE for the decode part of sampling: SANA's f32c32 architecture (16x16 latents -> 512x512)
 * with narrow stages and one layer each.
 */
export const BENCH_AUTOENCODER = autoencoderDCPreset('f32c32-sana-1.0', {
  attention_head_dim: 8,
  encoder_block_out_channels: [8, 16, 32, 32, 64, 64],
  decoder_block_out_channels: [8, 16, 32, 32, 64, 64],
  encoder_layers_per_block: [1, 1, 1, 1, 1, 1],
  decoder_layers_per_block: [1, 1, 1, 1, 1, 1],
});

const BATCH = 4;
const LATENT = 16;
const TEXT_TOKENS = 32;
/** Real tokens per batch item; the rest of the 32 are padding. */
const TEXT_LENGTHS = [32, 20, 9, 27];
const SAMPLING_STEPS = 20;
const GUIDANCE_SCALE = 4.5;
const SEED = 0;

interface Options {
  backends: string[];
  steps: number;
  child: string | null;
  matmulOnly: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { backends: ['tensorflow', 'wasm', 'cpu'], steps: 10, child: null, matmulOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--backends') o.backends = value().split(',').filter(Boolean);
    else if (a === '--steps') o.steps = Number(value());
    else if (a === '--child') o.child = value();
    else if (a === '--matmul-only') o.matmulOnly = true;
    else throw new Error(`unknown argument ${a} (expected --backends a,b --steps N)`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`--steps must be a positive integer`);
  return o;
}

/** Seconds of `f()` per call: one warm-up call, then calls until `minSeconds` have passed (at least `minRuns`). */
function timeIt(f: () => void, minSeconds: number, minRuns = 1): number {
  f();
  let runs = 0;
  const t0 = performance.now();
  while (runs < minRuns || performance.now() - t0 < minSeconds * 1000) {
    f();
    runs++;
  }
  return (performance.now() - t0) / 1000 / runs;
}

function matmulGflops(): number {
  const n = 1024;
  const a = tf.tensor2d(rngFor(SEED, 'bench.a').normalArray(n * n), [n, n]);
  const b = tf.tensor2d(rngFor(SEED, 'bench.b').normalArray(n * n), [n, n]);
  // Read back outside tidy: tidy walks every element of a returned typed array looking for tensors.
  const s = timeIt(() => {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
  }, 1, 1);
  tf.dispose([a, b]);
  return (2 * n ** 3) / s / 1e9;
}

export interface BenchBatch {
  latents: Tensor;
  noise: Tensor;
  sigmas: Tensor;
  timesteps: Tensor;
  text: Tensor;
  mask: Tensor;
}

export function makeBatch(): BenchBatch {
  const n = BATCH * LATENT * LATENT * BENCH_TRANSFORMER.in_channels;
  const sig = rngFor(SEED, 'bench.sigma').uniformArray(BATCH);
  const mask = new Float32Array(BATCH * TEXT_TOKENS);
  TEXT_LENGTHS.forEach((len, b) => mask.fill(1, b * TEXT_TOKENS, b * TEXT_TOKENS + len));
  return {
    latents: tf.tensor4d(rngFor(SEED, 'bench.latents').normalArray(n), [BATCH, LATENT, LATENT, BENCH_TRANSFORMER.in_channels]),
    noise: tf.tensor4d(rngFor(SEED, 'bench.noise').normalArray(n), [BATCH, LATENT, LATENT, BENCH_TRANSFORMER.in_channels]),
    sigmas: tf.tensor4d(sig, [BATCH, 1, 1, 1]),
    timesteps: tf.tensor1d(sig.map((s) => s * 1000)),
    text: tf.tensor3d(rngFor(SEED, 'bench.text').normalArray(BATCH * TEXT_TOKENS * 2304), [BATCH, TEXT_TOKENS, 2304]),
    mask: tf.tensor2d(mask, [BATCH, TEXT_TOKENS]),
  };
}

/** Loss and gradients of the flow-matching objective on the bench batch (x_t, v-target, MSE). */
export function flowLossAndGrads(model: SanaTransformer2DModel, params: Array<[string, Parameter]>, batch: BenchBatch): ReturnType<typeof valueAndGrads> {
  return valueAndGrads(
    () =>
      tf.tidy(() => {
        const xt = tf.sub(1, batch.sigmas).mul(batch.latents).add(batch.sigmas.mul(batch.noise)) as tf.Tensor4D;
        const v = model.forward({ hiddenStates: xt, encoderHiddenStates: batch.text as tf.Tensor3D, encoderAttentionMask: batch.mask as tf.Tensor2D, timestep: batch.timesteps as tf.Tensor1D });
        return tf.squaredDifference(v, batch.noise.sub(batch.latents)).mean() as tf.Scalar;
      }),
    params,
  );
}

/** One flow-matching training step as the trainer runs it: loss, gradients, AdamW, loss read back. */
export function trainStep(model: SanaTransformer2DModel, params: Array<[string, Parameter]>, opt: AdamW, batch: BenchBatch): number {
  const { value, grads } = flowLossAndGrads(model, params, batch);
  opt.step(grads, 1e-4);
  const loss = value.dataSync()[0];
  tf.dispose([value, ...grads.values()]);
  return loss;
}

/** 20 DPM-Solver steps with classifier-free guidance (model batch 2) and a decode, for one image. */
function sampleImage(model: SanaTransformer2DModel, ae: AutoencoderDC, batch: BenchBatch): void {
  const { config } = parseFlowDpmSolverConfig({ flow_shift: 3.0, use_flow_sigmas: true, prediction_type: 'flow_prediction' });
  const schedule = flowDpmSolverSchedule(config, SAMPLING_STEPS);
  tf.tidy(() => {
    const text = tf.concat([batch.text.slice([1, 0, 0], [1, -1, -1]), batch.text.slice([0, 0, 0], [1, -1, -1])]) as tf.Tensor3D; // [uncond, cond]
    const mask = tf.concat([batch.mask.slice([1, 0], [1, -1]), batch.mask.slice([0, 0], [1, -1])]) as tf.Tensor2D;
    const x = batch.noise.slice([0, 0, 0, 0], [1, -1, -1, -1]);
    const latents = sampleFlowDpmSolver(
      (xi, step) =>
        tf.tidy(() => {
          const v = model.forward({ hiddenStates: tf.concat([xi, xi]) as tf.Tensor4D, encoderHiddenStates: text, encoderAttentionMask: mask, timestep: tf.tensor1d([step.timestep, step.timestep]) });
          const [uncond, cond] = tf.split(v, 2, 0);
          return uncond.add(cond.sub(uncond).mul(GUIDANCE_SCALE));
        }),
      x,
      schedule,
    );
    ae.decode(latents.div(BENCH_AUTOENCODER.scaling_factor) as tf.Tensor4D).dataSync();
  });
}

async function runChild(backend: string, o: Options): Promise<Record<string, unknown>> {
  let info;
  try {
    info = await initBackend(backend);
  } catch (e) {
    return { backend, available: false, reason: (e as Error).message };
  }
  const out: Record<string, unknown> = { backend, available: true, detail: describeBackend(info) };
  out.matmul_1024_gflops = round(matmulGflops(), 1);
  if (!o.matmulOnly) {
    const model = new SanaTransformer2DModel(BENCH_TRANSFORMER).initialize(SEED);
    const params = model.namedParameters().filter(([, p]) => p.trainable);
    const opt = new AdamW(params, { weightDecay: 0.01 });
    const batch = makeBatch();
    out.params = model.numParameters();
    // Training: two warm-up steps (kernel set-up, optimizer slots), then timed steps. The median step
    // time is reported: one step slowed by other work on the machine does not move it.
    for (let i = 0; i < 2; i++) trainStep(model, params, opt, batch);
    const stepMs: number[] = [];
    for (let i = 0; i < o.steps; i++) {
      const t0 = performance.now();
      trainStep(model, params, opt, batch);
      stepMs.push(performance.now() - t0);
    }
    out.train_steps_per_s = round(1000 / median(stepMs), 3);
    const forward = () =>
      tf.tidy(() => {
        const v = model.forward({ hiddenStates: batch.latents as tf.Tensor4D, encoderHiddenStates: batch.text as tf.Tensor3D, encoderAttentionMask: batch.mask as tf.Tensor2D, timestep: batch.timesteps as tf.Tensor1D });
        v.dataSync();
      });
    out.forward_ms = round(timeIt(forward, 1, 3) * 1000, 1);
    const ae = new AutoencoderDC(BENCH_AUTOENCODER).initialize(SEED);
    out.sample_s_per_image = round(timeIt(() => sampleImage(model, ae, batch), 0, 1), 2);
    tf.dispose(Object.values(batch));
    opt.dispose();
  }
  out.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) {
    // The only line on stdout: the parent parses it.
    process.stdout.write(`${JSON.stringify(await runChild(o.child, o))}\n`);
    return;
  }
  const results: Record<string, unknown>[] = [];
  const started = performance.now();
  for (const backend of o.backends) {
    const args = [path.join(__dirname, '..', 'bin', 'run-ts.js'), __filename, '--child', backend, '--steps', String(o.steps)];
    if (backend === 'cpu') args.push('--matmul-only');
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      results.push(JSON.parse(line));
    } catch {
      results.push({ backend, available: false, reason: `bench process exited with ${r.status ?? r.signal}: ${line.slice(0, 200)}` });
    }
  }
  const summary = {
    config: { transformer: BENCH_TRANSFORMER, batch: BATCH, latent: `${LATENT}x${LATENT}`, text_tokens: TEXT_TOKENS, text_lengths: TEXT_LENGTHS, optimizer: 'AdamW', sampling: `${SAMPLING_STEPS} DPM steps, CFG ${GUIDANCE_SCALE}, small DC-AE decode` },
    results,
    seconds: round((performance.now() - started) / 1000, 1),
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

// Run as a script (bin/run-ts.js puts the script's path in argv[1]); importing it only gives the configs.
if (path.resolve(process.argv[1] ?? '') === __filename) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
