/**
 * The layers of a model a LoRA can adapt, by module path. Mirrors what peft's `inject_adapter_in_model`
 * walks (`model.named_modules()`), restricted to the layer kinds it wraps for SANA: `nn.Linear` and
 * `nn.Conv2d`. Paths are the names diffusers uses (`transformer_blocks.0.attn1.to_q`,
 * `transformer_blocks.0.ff.conv_inverted`), so they are also the keys of LoRA files.
 */
import { Conv2d, Linear, Module } from '../nn';
import { LoraSettings, LoraTarget, selectTargets } from './lora';

/**
 * Every Linear and Conv2d layer under `root`, keyed by module path, in module order. Convolutions that
 * are not 1x1 are listed too (selecting one gives a clear error when the adapter is built).
 */
export function adaptableLayers(root: Module): Map<string, LoraTarget> {
  const out = new Map<string, LoraTarget>();
  for (const [path, m] of root.namedModules()) if (m instanceof Linear || m instanceof Conv2d) out.set(path, m);
  return out;
}

/** Which layers of a model a new LoRA adapts. */
export interface LoraTargetSpec {
  /** peft `target_modules`: suffixes (`to_q`, `to_out.0`) or full-match regular expressions. */
  targetModules: string[];
  /** Only `transformer_blocks.<i>` with from <= i <= to (inclusive). */
  blocks?: { from: number; to: number } | null;
}

/**
 * The adaptable layers of `root` that `spec` selects. Fails, naming the patterns, when a pattern matches
 * nothing (a typo would otherwise silently train fewer layers than asked for).
 */
export function loraTargets(root: Module, spec: LoraTargetSpec): Map<string, LoraTarget> {
  const layers = adaptableLayers(root);
  const blocks = spec.blocks ?? undefined;
  const unmatched = spec.targetModules.filter((p) => selectTargets(layers, [p], blocks).size === 0);
  if (unmatched.length) {
    throw new Error(`LoRA target_modules match no adaptable layer${blocks ? ` in transformer_blocks ${blocks.from}..${blocks.to}` : ''}: ${unmatched.join(', ')}`);
  }
  return selectTargets(layers, spec.targetModules, blocks);
}

/** The trainable-parameter count of a LoRA on `targets` (nothing allocated): r * (in + out) per layer. */
export function loraParameterCount(targets: Map<string, LoraTarget>, settings: Pick<LoraSettings, 'rank'>): number {
  let n = 0;
  for (const layer of targets.values()) {
    const [inF, outF] = layer instanceof Linear ? [layer.inFeatures, layer.outFeatures] : [layer.inChannels, layer.outChannels];
    n += settings.rank * (inF + outF);
  }
  return n;
}
