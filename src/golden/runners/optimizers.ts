/**
 * Golden runner: optimizer trajectory cases (torch AdamW, official CAME, SANA's CAMEWrapper; each with
 * and without `clip_grad_norm_`). The case feeds recorded gradients for T steps; we replay them through
 * `src/training/optim` and compare the parameters after every step, the clipped gradients and total
 * norms, and (when the case gives a tolerance for them) the optimizer state.
 *
 * Parameters are held as the trainer holds them: rank-2 tensors as Linear weights and rank-4 tensors as
 * conv weights in TF memory layout, so the layout-aware axis handling is exercised too.
 */
import { tf, Tensor } from '../../backend';
import { HostTensor, toFloat32 } from '../../io/safetensors';
import { Parameter } from '../../nn/module';
import { Layout, tfToTorch, torchToTfHost } from '../../nn/layout';
import { zeros } from '../../nn/init';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, check, toleranceFor } from '../compare';
import { GoldenRunner, caseKind } from '../runner';
import { Optimizer } from '../../training/optim/optimizer';
import { AdamW } from '../../training/optim/adamw';
import { CAME } from '../../training/optim/came';
import { clipGradNorm } from '../../training/optim/clipGrad';

const FALLBACK = { metric: 'allclose' as const, atol: 1e-6, rtol: 0 };

function layoutFor(rank: number): Layout {
  return rank === 2 ? 'linear' : rank === 4 ? 'conv2d' : 'identity';
}

/** Builds the optimizer a variant names, rejecting keyword arguments we do not implement. */
function buildOptimizer(variant: string, spec: Record<string, any>, params: Array<[string, Parameter]>): Optimizer {
  const name = String(spec.optimizer ?? '');
  const kw = (spec.kwargs ?? {}) as Record<string, any>;
  const known = ['lr', 'betas', 'eps', 'weight_decay', 'clip_threshold'];
  const unknown = Object.keys(kw).filter((k) => !known.includes(k));
  if (unknown.length) throw new Error(`${variant}: unsupported optimizer arguments ${unknown.join(', ')}`);
  if (/AdamW/.test(name)) return new AdamW(params, { betas: kw.betas, eps: kw.eps, weightDecay: kw.weight_decay ?? 0.01 });
  if (/CAME/.test(name)) {
    const factoring = /CAMEWrapper|SANA/i.test(name) ? 'sana' : 'official';
    return new CAME(params, { betas: kw.betas, eps: kw.eps, weightDecay: kw.weight_decay ?? 0, clipThreshold: kw.clip_threshold, factoring });
  }
  throw new Error(`${variant}: unknown optimizer "${name}"`);
}

/** Row `t` of a [T, ...] host tensor. */
function row(t: HostTensor, i: number, what: string): Float32Array {
  const data = toFloat32(t, what);
  const n = data.length / t.shape[0];
  return data.subarray(i * n, (i + 1) * n);
}

function torchHost(layout: Layout, v: Tensor): Float32Array {
  return tf.tidy(() => tfToTorch(layout, v).dataSync() as Float32Array);
}

async function runVariant(c: GoldenCase, variant: string, vspec: Record<string, any>): Promise<CheckResult[]> {
  const order = c.spec.param_order as string[];
  const steps = Number(c.spec.steps);
  const lr = Number(vspec.kwargs?.lr);
  if (!Number.isFinite(lr)) throw new Error(`${variant}: kwargs.lr missing`);
  const clip = vspec.clip_grad_norm_before_step as { max_norm: number; norm_type?: number } | undefined;
  if (clip && (clip.norm_type ?? 2) !== 2) throw new Error(`${variant}: only norm_type 2 is supported`);

  // 1. Parameters from init.<name> (PyTorch layout on disk, TF layout in memory).
  const params: Array<[string, Parameter]> = order.map((name) => {
    const init = ioTensor(c, `init.${name}`);
    const p = new Parameter(init.shape, layoutFor(init.shape.length), zeros);
    p.assignHost(torchToTfHost(p.layout, init.shape, toFloat32(init, `init.${name}`)));
    return [name, p];
  });
  const opt = buildOptimizer(variant, vspec, params);

  // 2. Replay the recorded gradients, collecting what the case stores per step.
  const got = new Map<string, Float32Array[]>();
  const push = (k: string, d: Float32Array) => (got.get(k) ?? got.set(k, []).get(k)!).push(Float32Array.from(d));
  for (const [name, p] of params) push(`${variant}.params.${name}`, torchHost(p.layout, p.value));
  for (let t = 0; t < steps; t++) {
    const raw = new Map<string, Tensor>();
    for (const [name, p] of params) {
      const g = ioTensor(c, `grads.${name}`);
      raw.set(name, tf.tensor(torchToTfHost(p.layout, p.torchShape, row(g, t, `grads.${name}`)), p.shape, 'float32'));
    }
    const { grads, totalNorm } = clipGradNorm(raw, clip ? clip.max_norm : null);
    if (clip) {
      push(`${variant}.total_norm`, totalNorm.dataSync() as Float32Array);
      for (const [name, p] of params) push(`${variant}.clipped_grads.${name}`, torchHost(p.layout, grads.get(name)!));
    }
    opt.step(grads, lr);
    tf.dispose([...raw.values(), ...grads.values(), totalNorm]);
    for (const [name, p] of params) {
      push(`${variant}.params.${name}`, torchHost(p.layout, p.value));
      for (const slot of opt.slotsOf(name).keys()) {
        const s = opt.slotToTorch(name, slot);
        push(`debug.${variant}.${slot}.${name}`, s.dataSync() as Float32Array);
        s.dispose();
      }
    }
  }
  opt.dispose();
  for (const [, p] of params) p.dispose();

  // 3. Compare everything the case has for this variant (debug state only where a tolerance is given).
  const results: CheckResult[] = [];
  for (const [key, ref] of c.io) {
    const isDebug = key.startsWith(`debug.${variant}.`);
    if (!key.startsWith(`${variant}.`) && !isDebug) continue;
    if (isDebug && !toleranceFor(c.spec, key)) continue;
    const rows = got.get(key);
    if (!rows) {
      results.push({ tensor: key, ok: false, maxAbs: Infinity, allowed: 0, note: 'not produced by this implementation' });
      continue;
    }
    const flat = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
    rows.reduce((off, r) => (flat.set(r, off), off + r.length), 0);
    results.push(check(c.spec, key, flat, ref, FALLBACK));
  }
  return results;
}

export const optimizersRunner: GoldenRunner = {
  id: 'optimizer',
  matches: (c) => /AdamW|CAME/.test(caseKind(c)) && !c.config,
  run: async (c) => {
    const variants = (c.spec.variants ?? {}) as Record<string, Record<string, any>>;
    if (!Object.keys(variants).length) throw new Error(`${c.name}: case.json lists no variants`);
    const results: CheckResult[] = [];
    for (const [name, v] of Object.entries(variants)) results.push(...(await runVariant(c, name, v)));
    return results;
  },
};
