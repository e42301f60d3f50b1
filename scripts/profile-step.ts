/**
 * Where the time of the bench configuration's training step goes, kernel by kernel (`tf.profile`), on
 * one backend: the companion of `npm run bench` for speed work. Kernels run by hand-written gradients
 * and composite kernels appear both under their own name and inside the enclosing entry ("unnamed
 * scope" for custom gradients), so the per-kernel times add up to more than the step.
 *
 *   npm run -s profile -- [--backend tensorflow|wasm|cpu] [--mode step|grad|forward]
 *                          [--steps 8] [--top 30] [--detail BatchMatMul]
 *
 * step = forward + backward + AdamW (what `npm run bench` times); grad = without the optimizer.
 * --detail lists one kernel's calls by input and output shapes.
 */
import { tf, initBackend, describeBackend } from '../src/backend';
import { SanaTransformer2DModel } from '../src/models/dit';
import { AdamW } from '../src/training/optim';
import { BENCH_TRANSFORMER, BenchBatch, flowLossAndGrads, makeBatch, trainStep } from './bench';

interface Options {
  backend: string;
  mode: 'step' | 'grad' | 'forward';
  steps: number;
  top: number;
  detail: string | null;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { backend: 'tensorflow', mode: 'step', steps: 8, top: 30, detail: null };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i] ?? (() => { throw new Error(`${argv[i - 1]} needs a value`); })();
    switch (argv[i]) {
      case '--backend': o.backend = value(); break;
      case '--mode': {
        const m = value();
        if (m !== 'step' && m !== 'grad' && m !== 'forward') throw new Error(`--mode must be step, grad or forward (got "${m}")`);
        o.mode = m;
        break;
      }
      case '--steps': o.steps = Number(value()); break;
      case '--top': o.top = Number(value()); break;
      case '--detail': o.detail = value(); break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return o;
}

function forwardOnly(model: SanaTransformer2DModel, batch: BenchBatch): void {
  const v = tf.tidy(() => model.forward({ hiddenStates: batch.latents as tf.Tensor4D, encoderHiddenStates: batch.text as tf.Tensor3D, encoderAttentionMask: batch.mask as tf.Tensor2D, timestep: batch.timesteps as tf.Tensor1D }));
  v.dataSync();
  v.dispose();
}

function gradOnly(model: SanaTransformer2DModel, params: ReturnType<SanaTransformer2DModel['namedParameters']>, batch: BenchBatch): void {
  const { value, grads } = flowLossAndGrads(model, params, batch);
  value.dataSync();
  tf.dispose([value, ...grads.values()]);
}

interface KernelRecord {
  name: string;
  kernelTimeMs: number;
  inputShapes: number[][];
  outputShapes: number[][];
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const info = await initBackend(o.backend);
  const model = new SanaTransformer2DModel(BENCH_TRANSFORMER).initialize(0);
  const params = model.namedParameters().filter(([, p]) => p.trainable);
  const opt = new AdamW(params, { weightDecay: 0.01 });
  const batch = makeBatch();
  const run = o.mode === 'forward' ? () => forwardOnly(model, batch) : o.mode === 'grad' ? () => gradOnly(model, params, batch) : () => void trainStep(model, params, opt, batch);
  for (let i = 0; i < 2; i++) run();
  const ms: number[] = [];
  for (let i = 0; i < o.steps; i++) {
    const t0 = performance.now();
    run();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const profile = await tf.profile(run);
  const kernels = profile.kernels as unknown as KernelRecord[];
  const byName = new Map<string, { ms: number; calls: number }>();
  for (const k of kernels) {
    const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += k.kernelTimeMs;
    e.calls++;
    byName.set(k.name, e);
  }
  const out: Record<string, unknown> = {
    backend: describeBackend(info),
    mode: o.mode,
    ms_median: Math.round(ms[ms.length >> 1] * 10) / 10,
    ms_min: Math.round(ms[0] * 10) / 10,
    kernels: kernels.length,
    by_kernel: [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, o.top).map(([name, e]) => `${name.padEnd(36)} ${e.ms.toFixed(1).padStart(8)} ms ${String(e.calls).padStart(5)} calls`),
  };
  if (o.detail) {
    const byShape = new Map<string, { ms: number; calls: number }>();
    for (const k of kernels.filter((x) => x.name === o.detail)) {
      const key = `${k.inputShapes.map((s) => JSON.stringify(s)).join(' x ')} -> ${k.outputShapes.map((s) => JSON.stringify(s)).join(', ')}`;
      const e = byShape.get(key) ?? { ms: 0, calls: 0 };
      e.ms += k.kernelTimeMs;
      e.calls++;
      byShape.set(key, e);
    }
    out.detail = [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, o.top).map(([key, e]) => `${key.padEnd(60)} ${e.ms.toFixed(2).padStart(8)} ms ${String(e.calls).padStart(5)} calls`);
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  opt.dispose();
  tf.dispose(Object.values(batch));
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
