/**
 * Tolerance lookup and tensor comparison for golden cases. `case.json` gives tolerances per tensor name
 * or pattern (`grad.*`, `*.mu*, *.sigma*`, `samples_N`, `all`) with one of three metrics:
 * - allclose: |got - ref| <= atol + rtol * |ref| elementwise;
 * - relative: |got - ref| <= rtol * |ref| (scalars such as a loss);
 * - per tensor: max |got - ref| <= rtol * max |ref| + atol (gradients);
 * - exact: equality (integer ids, masks).
 */
import { HostTensor } from '../io/safetensors';

export type Metric = 'allclose' | 'relative' | 'per_tensor' | 'exact';

export interface Tolerance {
  metric: Metric;
  atol: number;
  rtol: number;
}

export interface CheckResult {
  tensor: string;
  ok: boolean;
  maxAbs: number;
  /** The bound that applied at the worst element. */
  allowed: number;
  note?: string;
}

type Numeric = ArrayLike<number> | ArrayLike<bigint>;

function patternToRegex(p: string): RegExp {
  const esc = p.trim().replace(/\[valid\]$/, '').replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/_N$/, '_\\d+');
  return new RegExp(`^${esc}$`);
}

function parseMetric(entry: Record<string, unknown>): Tolerance {
  const m = String(entry.metric ?? 'allclose');
  const atol = typeof entry.atol === 'number' ? entry.atol : 0;
  const rtol = typeof entry.rtol === 'number' ? entry.rtol : 0;
  if (m.startsWith('exact')) return { metric: 'exact', atol: 0, rtol: 0 };
  if (m.startsWith('per tensor')) return { metric: 'per_tensor', atol, rtol };
  if (m.startsWith('relative')) return { metric: 'relative', atol, rtol };
  return { metric: 'allclose', atol, rtol };
}

/**
 * The tolerance for `tensor` from a case's `tolerance` block: an exact key first, then the patterns
 * (comma- or slash-separated alternatives), then `all`. Returns null when nothing applies.
 */
export function toleranceFor(spec: Record<string, any>, tensor: string): Tolerance | null {
  const block = (spec.tolerance ?? {}) as Record<string, Record<string, unknown>>;
  if (block[tensor]) return parseMetric(block[tensor]);
  for (const [key, entry] of Object.entries(block)) {
    const alternatives = key.split(/\s*,\s*|\s+\/\s+/);
    if (alternatives.some((a) => patternToRegex(a).test(tensor))) return parseMetric(entry);
  }
  return block.all ? parseMetric(block.all) : null;
}

function num(x: number | bigint): number {
  return typeof x === 'bigint' ? Number(x) : x;
}

/** Compares `got` with the reference `ref` under `tol`; shapes are checked when `gotShape` is given. */
export function compareTensor(tensor: string, got: Numeric, ref: HostTensor | Numeric, tol: Tolerance, gotShape?: readonly number[]): CheckResult {
  const refData = (ref as HostTensor).data !== undefined ? ((ref as HostTensor).data as Numeric) : (ref as Numeric);
  const refShape = (ref as HostTensor).shape;
  if (gotShape && refShape && (gotShape.length !== refShape.length || gotShape.some((d, i) => d !== refShape[i]))) {
    if (gotShape.reduce((a, b) => a * b, 1) !== refShape.reduce((a, b) => a * b, 1)) {
      return { tensor, ok: false, maxAbs: Infinity, allowed: 0, note: `shape [${gotShape}] vs reference [${refShape}]` };
    }
  }
  if (got.length !== refData.length) {
    return { tensor, ok: false, maxAbs: Infinity, allowed: 0, note: `${got.length} values vs reference ${refData.length}` };
  }
  let maxAbs = 0;
  let maxRef = 0;
  let worstExcess = -Infinity;
  let worstAllowed = 0;
  for (let i = 0; i < got.length; i++) {
    const g = num(got[i]);
    const r = num(refData[i]);
    if (Number.isNaN(g) !== Number.isNaN(r)) return { tensor, ok: false, maxAbs: NaN, allowed: 0, note: `NaN mismatch at index ${i}` };
    if (Number.isNaN(r)) continue;
    const d = g === r ? 0 : Math.abs(g - r);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = d;
    maxRef = Math.max(maxRef, Math.abs(r));
    if (tol.metric === 'allclose' || tol.metric === 'relative') {
      const allowed = (tol.metric === 'allclose' ? tol.atol : 0) + tol.rtol * Math.abs(r);
      if (d - allowed > worstExcess) {
        worstExcess = d - allowed;
        worstAllowed = allowed;
      }
    }
  }
  switch (tol.metric) {
    case 'exact':
      return { tensor, ok: maxAbs === 0, maxAbs, allowed: 0 };
    case 'per_tensor': {
      const allowed = tol.rtol * maxRef + tol.atol;
      return { tensor, ok: maxAbs <= allowed, maxAbs, allowed };
    }
    default:
      return { tensor, ok: worstExcess <= 0, maxAbs, allowed: worstAllowed };
  }
}

/** Convenience: look the tolerance up in the case and compare; unknown tolerance falls back to `fallback`. */
export function check(spec: Record<string, any>, tensor: string, got: Numeric, ref: HostTensor, fallback: Tolerance, gotShape?: readonly number[]): CheckResult {
  return compareTensor(tensor, got, ref, toleranceFor(spec, tensor) ?? fallback, gotShape);
}
