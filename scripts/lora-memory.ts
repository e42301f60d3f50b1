/**
 * Memory of LoRA vs full fine-tuning on the same model and batch: `node bin/run-ts.js
 * scripts/lora-memory.ts [--preset small] [--steps 3] [--batch 4] [--rank 8]` prints JSON.
 *
 * Each mode runs in its own process (so peak RSS is its own): AdamW steps of the flow loss on seeded
 * synthetic latents and caption states. Reported per mode: parameters with gradients, gradient bytes,
 * optimizer state bytes (the slots a checkpoint stores), tensor memory held after the steps, the peak
 * tensor memory of one step (`tf.profile`) and the process's peak RSS.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { initBackend, describeBackend, tf, Tensor1D, Tensor2D, Tensor3D, Tensor4D } from '../src/backend';
import { rngFor, valueAndGrads } from '../src/nn';
import { SanaTransformer2DModel, sanaTransformerPreset } from '../src/models/dit';
import { createLora, loraParameterCount, loraTargets } from '../src/lora';
import { createOptimizer } from '../src/training/optim';

interface Args {
  preset: string;
  steps: number;
  batch: number;
  rank: number;
  textLength: number;
  mode: 'full' | 'lora' | null;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { preset: 'small', steps: 3, batch: 4, rank: 8, textLength: 32, mode: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--preset') a.preset = v;
    else if (k === '--steps') a.steps = Number(v);
    else if (k === '--batch') a.batch = Number(v);
    else if (k === '--rank') a.rank = Number(v);
    else if (k === '--text-length') a.textLength = Number(v);
    else if (k === '--mode') a.mode = v as Args['mode'];
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

async function measure(a: Args): Promise<Record<string, unknown>> {
  const backend = await initBackend();
  const model = new SanaTransformer2DModel(sanaTransformerPreset(a.preset)).initialize(0);
  const c = model.config;
  let params = model.trainableParameters();
  if (a.mode === 'lora') {
    model.setTrainable(false);
    const lora = createLora(loraTargets(model, { targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0'] }), { rank: a.rank, alpha: a.rank, dropout: 0, init: 'gaussian' }, 0);
    params = lora.trainableParameters();
  }
  const optimizer = createOptimizer({ type: 'adamw', lr: 1e-4, betas: null, eps: null, weight_decay: 0, came_factoring: 'sana', clip_threshold: 1 }, params);
  // Seeded synthetic batch: latents, noise target, caption states; all tokens attended.
  const hw = c.sample_size;
  const host = (stream: string, n: number) => rngFor(0, stream, 0).normalArray(n);
  const inputs = {
    hiddenStates: tf.tensor4d(host('x', a.batch * hw * hw * c.in_channels), [a.batch, hw, hw, c.in_channels]) as Tensor4D,
    encoderHiddenStates: tf.tensor3d(host('text', a.batch * a.textLength * c.caption_channels), [a.batch, a.textLength, c.caption_channels]) as Tensor3D,
    encoderAttentionMask: tf.ones([a.batch, a.textLength], 'int32') as Tensor2D,
    timestep: tf.tensor1d(Array.from({ length: a.batch }, (_, i) => (1000 * (i + 1)) / (a.batch + 1))) as Tensor1D,
  };
  const target = tf.tensor4d(host('target', a.batch * hw * hw * c.out_channels), [a.batch, hw, hw, c.out_channels]);
  const step = () => {
    const { value, grads } = valueAndGrads(() => tf.tidy(() => model.forward(inputs).sub(target).square().mean() as tf.Scalar), params);
    optimizer.step(grads, 1e-4);
    value.dispose();
    for (const g of grads.values()) g.dispose();
  };
  step();
  const profile = await tf.profile(step);
  for (let i = 2; i < a.steps; i++) step();
  const state = optimizer.getState();
  let stateFloats = 0;
  for (const t of state.tensors.values()) stateFloats += t.data.length;
  const trainable = params.reduce((n, [, p]) => n + p.size, 0);
  return {
    mode: a.mode,
    backend: describeBackend(backend),
    preset: a.preset,
    batch: a.batch,
    latent: [hw, hw, c.in_channels],
    model_parameters: model.numParameters(),
    parameters_with_gradients: trainable,
    gradient_bytes: trainable * 4,
    optimizer_state_bytes: stateFloats * 4,
    tensor_bytes_after_steps: tf.memory().numBytes,
    step_peak_tensor_bytes: profile.peakBytes,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  };
}

/**
 * Weights, gradients and AdamW state (two float32 slots) of the released model sizes, counted from
 * shapes alone (nothing is allocated): what full fine-tuning holds versus LoRA on the default targets.
 */
function releasedSizes(rank: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const preset of ['sana-0.6b', 'sana-1.6b']) {
    const model = new SanaTransformer2DModel(sanaTransformerPreset(preset));
    const total = model.numParameters();
    const lora = loraParameterCount(loraTargets(model, { targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0'] }), { rank });
    out[preset] = {
      model_parameters: total,
      lora_parameters: lora,
      full_weights_grads_adamw_bytes: total * 4 * 4,
      lora_weights_grads_adamw_bytes: total * 4 + lora * 4 * 3,
    };
  }
  return out;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.mode) {
    process.stdout.write(`${JSON.stringify(await measure(a))}\n`);
    return;
  }
  const runOne = (mode: 'full' | 'lora') => {
    const forwarded = ['--preset', a.preset, '--steps', String(a.steps), '--batch', String(a.batch), '--rank', String(a.rank), '--text-length', String(a.textLength), '--mode', mode];
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'run-ts.js'), __filename, ...forwarded], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${mode} run failed:\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
  };
  const full = runOne('full');
  const lora = runOne('lora');
  const ratio = (k: string) => Number((lora[k] / full[k]).toFixed(4));
  const summary = {
    lora_rank: a.rank,
    lora_targets: ['to_q', 'to_k', 'to_v', 'to_out.0'],
    full,
    lora,
    lora_over_full: Object.fromEntries(['parameters_with_gradients', 'optimizer_state_bytes', 'tensor_bytes_after_steps', 'step_peak_tensor_bytes', 'peak_rss_bytes'].map((k) => [k, ratio(k)])),
  };
  process.stdout.write(`${JSON.stringify({ ...summary, released_sizes_from_shapes: releasedSizes(a.rank) }, null, 2)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
