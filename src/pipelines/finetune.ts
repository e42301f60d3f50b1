/**
 * `sana finetune`: LoRA fine-tuning of a pretrained SANA transformer, the counterpart of diffusers'
 * `examples/dreambooth/train_dreambooth_lora_sana.py` on top of this project's trainer. The base
 * transformer is frozen (no gradients, no optimizer state); adapters chosen by peft-style
 * `target_modules` train; every checkpoint holds the adapter as `pytorch_lora_weights.safetensors` in
 * the diffusers format, so `SanaPipeline.load_lora_weights(dir)` and `sana sample --lora` read it.
 * Data, caches, logs, checkpoints and resume are the trainer's (`pipelines/train.ts`).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { TrainConfig } from '../config/train';
import { Module } from '../nn/module';
import { SanaTransformer2DModel } from '../models/dit';
import { LoraAdapterSet, LoraSettings, LoraTarget, createLora, loraTargets } from '../lora';
import { loadLoraWeightsInto, saveLoraFile } from '../io/lora';
import { writeFileAtomic } from '../io/atomic';
import { loadSanaTransformer, saveSanaTransformer } from '../io/pretrained/transformer';
import { LoraFileSpec, fuseLoraFiles } from './loraLoading';
import { TrainRunOptions, TrainRunResult, TrainableSelection, runTraining } from './train';

/** The file name diffusers' `save_lora_weights` uses (and `load_lora_weights(dir)` looks for). */
export const LORA_WEIGHTS_NAME = 'pytorch_lora_weights.safetensors';

/** The peft names of the GLUMBConv 1x1 convolutions and of the caption projection's two linears. */
const CONV_TARGETS = ['conv_inverted', 'conv_point'];
const CAPTION_TARGETS = ['caption_projection.linear_1', 'caption_projection.linear_2'];

type LoraConfig = NonNullable<TrainConfig['lora']>;

/** Rank, alpha (default: the rank), dropout and init of a config's `lora` section. */
export function loraSettingsOf(lora: LoraConfig): LoraSettings {
  return { rank: lora.rank, alpha: lora.alpha ?? lora.rank, dropout: lora.dropout, init: lora.init };
}

/**
 * The layers a config's `lora` section adapts: `target_modules` (plus the 1x1 convs when `convs`)
 * inside the block range, and the caption projection when asked (it is outside every block).
 * Also returns the `target_modules` to record in the file: the patterns, or the exact module paths
 * when a block range narrows them (so peft and diffusers rebuild exactly these layers).
 */
export function selectLoraTargets(model: Module, lora: LoraConfig): { targets: Map<string, LoraTarget>; targetModules: string[] } {
  const blocks = lora.blocks ? { from: lora.blocks[0], to: lora.blocks[1] } : null;
  const patterns = [...lora.target_modules, ...(lora.convs ? CONV_TARGETS : [])];
  const targets = loraTargets(model, { targetModules: patterns, blocks });
  if (lora.caption_projection) for (const [p, l] of loraTargets(model, { targetModules: CAPTION_TARGETS })) targets.set(p, l);
  const targetModules = blocks ? [...targets.keys()] : [...patterns, ...(lora.caption_projection ? CAPTION_TARGETS : [])];
  return { targets, targetModules };
}

/** A LoRA attached for training, as the trainer's parameter selection. */
export interface TrainingLora extends TrainableSelection {
  adapters: LoraAdapterSet;
}

/**
 * Freezes `model`, attaches fresh adapters (A seeded, B = 0: step 0 computes the base model) and
 * returns them as what trains. Checkpoints save and restore only the adapter file.
 */
export function attachTrainingLora(model: SanaTransformer2DModel, lora: LoraConfig, seed: number): TrainingLora {
  model.setTrainable(false);
  const { targets, targetModules } = selectLoraTargets(model, lora);
  const adapters = createLora(targets, loraSettingsOf(lora), lora.init_seed ?? seed);
  adapters.training = true;
  return {
    adapters,
    params: adapters.trainableParameters(),
    save: (dir) => saveLoraFile(path.join(dir, LORA_WEIGHTS_NAME), adapters, targetModules),
    load: (dir) => loadLoraWeightsInto(adapters, path.join(dir, LORA_WEIGHTS_NAME)),
    dispose: () => {
      adapters.detach();
      adapters.dispose();
    },
    // Validation images show the adapter as it will be used: without dropout.
    evaluating: async (f) => {
      adapters.training = false;
      try {
        return await f();
      } finally {
        adapters.training = true;
      }
    },
  };
}

/**
 * `model.pretrained` may name a transformer folder, a pipeline folder or a training checkpoint (both
 * hold `transformer/`): returns the transformer folder, or fails saying what was looked for.
 */
export function resolveTransformerFolder(dir: string): string {
  if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
  const sub = path.join(dir, 'transformer');
  if (fs.existsSync(path.join(sub, 'config.json'))) return sub;
  throw new Error(`model.pretrained: ${dir} holds neither config.json nor transformer/config.json (a diffusers transformer folder, pipeline folder or training checkpoint is expected)`);
}

export type FinetuneRunOptions = Omit<TrainRunOptions, 'trainable'>;

export interface FinetuneRunResult extends TrainRunResult {
  /** `<run>/pytorch_lora_weights.safetensors`: the adapter of the last checkpoint. */
  loraFile: string | null;
}

/** Checks the fine-tuning fields of a validated config, naming each problem. */
export function checkFinetuneConfig(c: TrainConfig): asserts c is TrainConfig & { lora: LoraConfig; model: { pretrained: string } } {
  const problems: string[] = [];
  if (!c.lora) problems.push('lora: a lora section is required (rank, alpha, target_modules, ...)');
  if (!c.model.pretrained) problems.push('model.pretrained: the base transformer folder to fine-tune is required');
  if (c.task !== 'flow') problems.push(`task: LoRA fine-tuning trains a SANA transformer ('flow'), got '${c.task}'`);
  if (problems.length) throw new Error(`finetune config: ${problems.join('; ')}`);
}

/**
 * Runs (or resumes) LoRA fine-tuning. Per-step dropout masks are seeded from (run seed, step), so a
 * resumed run draws what an uninterrupted one would. At the end the last checkpoint's adapter is
 * copied to `<run>/pytorch_lora_weights.safetensors`.
 */
export async function runFinetune(opts: FinetuneRunOptions): Promise<FinetuneRunResult> {
  const c = opts.config;
  checkFinetuneConfig(c);
  const config: TrainConfig = { ...c, model: { ...c.model, pretrained: resolveTransformerFolder(c.model.pretrained) } };
  let lora: TrainingLora | null = null;
  const result = await runTraining({
    ...opts,
    config,
    trainable: (model) => {
      if (!(model instanceof SanaTransformer2DModel)) throw new Error('finetune: the run did not build a SanaTransformer2DModel');
      lora = attachTrainingLora(model, c.lora, c.seed);
      return lora;
    },
    onEvent: (e) => {
      // The step counter of 'start' (0 or the resumed step) and of each finished step is the index of
      // the next step: its dropout masks derive from it.
      if (lora && (e.type === 'start' || e.type === 'step')) lora.adapters.setDropoutStep(c.seed, e.step);
      opts.onEvent?.(e);
    },
  });
  let loraFile: string | null = null;
  if (result.checkpoint) {
    const src = path.join(result.checkpoint, LORA_WEIGHTS_NAME);
    if (fs.existsSync(src)) {
      loraFile = path.join(result.runDir, LORA_WEIGHTS_NAME);
      writeFileAtomic(loraFile, fs.readFileSync(src));
    }
  }
  return { ...result, loraFile };
}

export interface FuseOptions {
  /** Base transformer folder (or a folder holding `transformer/`). */
  transformer: string;
  loras: LoraFileSpec[];
  /** Output transformer folder (replaced atomically). */
  output: string;
}

export interface FuseResult {
  output: string;
  /** Layer updates baked in (summed over files). */
  layers: number;
}

/**
 * Loads a transformer, adds `scale * alpha/r * B A` of every LoRA file to the weights it adapts and
 * saves the result as a diffusers transformer folder that loads without any LoRA support.
 */
export function fuseLoraCheckpoint(opts: FuseOptions): FuseResult {
  if (opts.loras.length === 0) throw new Error('fuse: at least one LoRA file is required');
  const model = loadSanaTransformer(resolveTransformerFolder(opts.transformer));
  try {
    const layers = fuseLoraFiles(model, opts.loras);
    saveSanaTransformer(model, opts.output);
    return { output: opts.output, layers };
  } finally {
    model.dispose();
  }
}
