/**
 * LoRA files applied to a loaded transformer for sampling (`--lora FILE[:scale]` on the command line)
 * and baked into its weights (`sana fuse`). Plays the part of diffusers' `SanaPipeline.load_lora_weights`
 * + `set_adapters(weights=...)` and `fuse_lora(lora_scale=...)`: each file is one adapter with its own
 * scale, and several adapters add up.
 */
import type { SanaTransformer2DModel } from '../models/dit';
import { LoraAdapterSet, adaptableLayers } from '../lora';
import { LoraFile, loraFromFile, readLoraFile } from '../io/lora';

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
 * Reads every file and builds its adapter for `transformer`; nothing is attached until every file has
 * been read and checked, so a bad file leaves the model untouched. Errors name the file and list every
 * offending key (unknown keys, rank mismatches, layers the model lacks or whose sizes differ).
 */
function buildAdapters(transformer: SanaTransformer2DModel, specs: LoraFileSpec[]): LoraAdapterSet[] {
  const layers = adaptableLayers(transformer);
  const files: LoraFile[] = specs.map((s) => {
    if (!Number.isFinite(s.scale)) throw new Error(`${s.path}: LoRA scale must be a finite number, got ${s.scale}`);
    return readLoraFile(s.path);
  });
  const sets: LoraAdapterSet[] = [];
  try {
    files.forEach((f, i) => {
      const set = loraFromFile(f, layers);
      set.scale = specs[i].scale;
      sets.push(set);
    });
  } catch (e) {
    for (const s of sets) s.dispose();
    throw e;
  }
  return sets;
}

/**
 * Reads every LoRA file and attaches it to `transformer` at its scale (several files add up).
 * A file that does not fit the model is an error listing the offending keys.
 */
export function applyLoraFiles(transformer: SanaTransformer2DModel, specs: LoraFileSpec[]): AppliedLoras {
  if (specs.length === 0) return { specs, remove: () => {} };
  const sets = buildAdapters(transformer, specs);
  for (const s of sets) s.attach();
  let removed = false;
  return {
    specs,
    remove: () => {
      if (removed) return;
      removed = true;
      for (const s of sets) {
        s.detach();
        s.dispose();
      }
    },
  };
}

/**
 * Bakes LoRA files into the transformer's weights, each at its scale (W += scale * alpha/r * B A per
 * file), like diffusers' `fuse_lora`. Afterwards the model computes what it computed with the adapters
 * attached, and carries no adapter. Returns the number of layer updates baked in.
 */
export function fuseLoraFiles(transformer: SanaTransformer2DModel, specs: LoraFileSpec[]): number {
  const sets = buildAdapters(transformer, specs);
  try {
    sets.forEach((s, i) => s.fuse(specs[i].scale));
    return sets.reduce((n, s) => n + s.entries().length, 0);
  } finally {
    for (const s of sets) s.dispose();
  }
}
