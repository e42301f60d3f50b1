/**
 * LoRA files applied to a loaded transformer for sampling: `--lora FILE[:scale]` on the command line.
 * (Interface fixed here; the implementation lives with the LoRA fine-tuning code.)
 */
import type { SanaTransformer2DModel } from '../models/dit';

/** One LoRA file and the scale it is applied with. */
export interface LoraFileSpec {
  path: string;
  scale: number;
}

/** `FILE` or `FILE:SCALE` (scale defaults to 1). */
export function parseLoraSpec(arg: string): LoraFileSpec {
  const m = /^(.*):(-?\d+(?:\.\d+)?(?:e-?\d+)?)$/i.exec(arg);
  if (m && m[1]) return { path: m[1], scale: Number(m[2]) };
  if (!arg) throw new Error('--lora: expected FILE or FILE:SCALE, got an empty value');
  return { path: arg, scale: 1 };
}

/** What applying LoRA files did; `remove()` detaches them again. */
export interface AppliedLoras {
  specs: LoraFileSpec[];
  remove(): void;
}

/**
 * Reads every LoRA file and attaches it to `transformer` at its scale (several files add up).
 * A file that does not fit the model is an error listing the offending keys.
 */
export function applyLoraFiles(transformer: SanaTransformer2DModel, specs: LoraFileSpec[]): AppliedLoras {
  if (specs.length === 0) return { specs, remove: () => {} };
  void transformer;
  throw new Error('--lora: applying LoRA files is not available yet');
}
