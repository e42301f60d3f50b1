/**
 * LoRA adapters (peft `tuners/lora/layer.py` semantics) attached to `Linear` and 1x1 `Conv2d` layers
 * through their `adapters` hook:
 *
 *   y = base(x) + scale * (alpha / r) * B(A(dropout(x)))
 *
 * with A: in -> r and B: r -> out, no biases. `scale` is the runtime multiplier diffusers passes as
 * `attention_kwargs={"scale": s}` (default 1). The adapters form their own module tree keyed by the
 * target layer's path, so their parameter keys are `<layer path>.lora_A.weight` /
 * `<layer path>.lora_B.weight`, the names diffusers writes (after its `transformer.` prefix).
 */
import { tf, Tensor } from '../backend';
import { Adapter, Conv2d, Init, Linear, Module, Parameter, normal, rngFor, torchDefault, zeros } from '../nn';

/** A layer a LoRA can attach to. */
export type LoraTarget = Linear | Conv2d;

export interface LoraSettings {
  /** Rank r. */
  rank: number;
  /** Scaling numerator: the update is multiplied by alpha / r. */
  alpha: number;
  /** Dropout on the adapter input during training (0 = none). */
  dropout: number;
  /**
   * How A is initialised (B always starts at zero, so a fresh adapter leaves the model unchanged):
   * 'kaiming' = peft's default (uniform with bound 1/sqrt(fan_in)), 'gaussian' = N(0, 1/r).
   */
  init: 'kaiming' | 'gaussian';
}

export const DEFAULT_LORA_SETTINGS: LoraSettings = { rank: 4, alpha: 4, dropout: 0, init: 'kaiming' };

/** The LoRA branch of one layer. Its parameters are `lora_A.weight` and `lora_B.weight`. */
export class LoraLayer extends Module implements Adapter {
  readonly loraA: Parameter;
  readonly loraB: Parameter;
  private readonly isConv: boolean;
  private readonly inFeatures: number;
  private readonly outFeatures: number;

  constructor(readonly target: LoraTarget, readonly settings: LoraSettings, private readonly owner: LoraAdapterSet) {
    super();
    const r = settings.rank;
    if (!Number.isInteger(r) || r < 1) throw new Error(`LoRA rank must be a positive integer, got ${r}`);
    const initA = settings.init === 'gaussian' ? normal(1 / r) : torchDefault(target instanceof Linear ? target.inFeatures : target.inChannels);
    if (target instanceof Linear) {
      this.isConv = false;
      this.inFeatures = target.inFeatures;
      this.outFeatures = target.outFeatures;
      this.loraA = this.paramIn('lora_A', [r, this.inFeatures], initA, 'linear');
      this.loraB = this.paramIn('lora_B', [this.outFeatures, r], zeros, 'linear');
    } else {
      if (target.kernelSize !== 1 || target.groups !== 1 || target.stride !== 1) {
        throw new Error(`LoRA supports 1x1 ungrouped convolutions only (got kernel ${target.kernelSize}, groups ${target.groups}, stride ${target.stride})`);
      }
      this.isConv = true;
      this.inFeatures = target.inChannels;
      this.outFeatures = target.outChannels;
      this.loraA = this.paramIn('lora_A', [r, this.inFeatures, 1, 1], initA, 'conv2d');
      this.loraB = this.paramIn('lora_B', [this.outFeatures, r, 1, 1], zeros, 'conv2d');
    }
  }

  /** Registers `<name>.weight` through a one-parameter child so keys read `lora_A.weight`. */
  private paramIn(name: string, shape: number[], init: Init, layout: 'linear' | 'conv2d'): Parameter {
    return this.module(name, new WeightOnly(shape, init, layout)).weight;
  }

  /** alpha / r times the runtime scale. */
  get effectiveScale(): number {
    return (this.settings.alpha / this.settings.rank) * this.owner.scale;
  }

  /** The branch output for layer input x (Linear: [..., in]; Conv: [B, H, W, in]). */
  delta(x: Tensor): Tensor {
    return tf.tidy(() => {
      const s = this.effectiveScale;
      const r = this.settings.rank;
      let h = x;
      const p = this.owner.training ? this.settings.dropout : 0;
      if (p > 0) h = tf.dropout(h, p, undefined, this.owner.nextDropoutSeed());
      // A and B are [in, r] and [r, out] in memory for both layer kinds (1x1 kernels flattened).
      const a = this.loraA.value.reshape([this.inFeatures, r]);
      const b = this.loraB.value.reshape([r, this.outFeatures]);
      const lead = h.shape.slice(0, -1);
      // The scale goes on the small [r, out] factor: scaling the [N, out] product would keep one more
      // activation-sized tensor per adapted layer for the backward pass.
      const y = tf.matMul(tf.matMul(h.reshape([-1, this.inFeatures]), a), b.mul(s));
      return y.reshape([...lead, this.outFeatures]);
    });
  }

  /** The update this adapter adds to the base weight, in the base weight's TF layout, at `scale`. */
  weightDelta(scale: number): Tensor {
    return tf.tidy(() => {
      const r = this.settings.rank;
      const a = this.loraA.value.reshape([this.inFeatures, r]);
      const b = this.loraB.value.reshape([r, this.outFeatures]);
      const d = tf.matMul(a, b).mul((this.settings.alpha / r) * scale); // [in, out]
      return this.isConv ? d.reshape([1, 1, this.inFeatures, this.outFeatures]) : d;
    });
  }
}

/** A module holding a single `weight` parameter (names `lora_A.weight`). */
class WeightOnly extends Module {
  readonly weight: Parameter;
  constructor(shape: number[], init: Init, layout: 'linear' | 'conv2d') {
    super();
    this.weight = this.param('weight', shape, init, layout);
  }
}

/**
 * Every LoRA branch of one adapter, keyed by the path of the layer it modifies. Its `namedParameters`
 * are the adapter keys without the `transformer.` prefix diffusers adds on disk.
 */
export class LoraAdapterSet extends Module {
  /** Runtime multiplier (diffusers' `attention_kwargs["scale"]`). */
  scale = 1;
  /** Dropout is applied only while training. */
  training = false;
  private readonly layers = new Map<string, LoraLayer>();
  private dropoutSeed = 0;
  private dropoutCalls = 0;

  constructor(readonly settings: LoraSettings) {
    super();
  }

  /** Adds a branch for the layer at `path` (not yet attached); `settings` overrides rank/alpha for it. */
  add(path: string, target: LoraTarget, settings: LoraSettings = this.settings): LoraLayer {
    const layer = this.module(path, new LoraLayer(target, settings, this));
    this.layers.set(path, layer);
    return layer;
  }

  entries(): Array<[string, LoraLayer]> {
    return [...this.layers.entries()];
  }

  get(path: string): LoraLayer | undefined {
    return this.layers.get(path);
  }

  /** Seeds dropout for one training step, so a resumed run draws the same masks. */
  setDropoutStep(seed: number, step: number): void {
    this.dropoutSeed = rngFor(seed, 'lora-dropout', step).nextUint32();
    this.dropoutCalls = 0;
  }

  nextDropoutSeed(): number {
    return (this.dropoutSeed + this.dropoutCalls++ * 0x9e3779b1) >>> 0;
  }

  /** Attaches every branch to its layer (idempotent). */
  attach(): this {
    for (const layer of this.layers.values()) {
      if (!layer.target.adapters.includes(layer)) layer.target.adapters.push(layer);
    }
    return this;
  }

  /** Removes every branch from its layer. */
  detach(): this {
    for (const layer of this.layers.values()) {
      layer.target.adapters = layer.target.adapters.filter((a) => a !== layer);
    }
    return this;
  }

  /**
   * Bakes the adapter into the base weights at `scale` (W += scale * alpha/r * B A) and detaches it,
   * so the model afterwards computes what it computed with the adapter at that scale.
   */
  fuse(scale = 1): void {
    this.detach();
    for (const layer of this.layers.values()) {
      const w = layer.target.weight;
      const fused = tf.tidy(() => w.value.add(layer.weightDelta(scale)));
      w.assign(fused);
      fused.dispose();
    }
  }
}

/**
 * Selects target layers by peft's rule: a pattern matches a layer whose path equals it or ends with
 * `.pattern`; a pattern starting with `^` or containing regex metacharacters other than `.` is a full-match
 * regular expression. `blocks` restricts to `transformer_blocks.<i>` with i in the inclusive range.
 */
export function selectTargets(
  layers: Map<string, LoraTarget>,
  patterns: string[],
  blocks?: { from: number; to: number },
): Map<string, LoraTarget> {
  const out = new Map<string, LoraTarget>();
  const matchers = patterns.map((p) => {
    if (/[\^$*+?()[\]{}|\\]/.test(p)) {
      const re = new RegExp(p.startsWith('^') ? p : `^(?:${p})$`);
      return (path: string) => re.test(path);
    }
    return (path: string) => path === p || path.endsWith(`.${p}`);
  });
  for (const [path, layer] of layers) {
    if (!matchers.some((m) => m(path))) continue;
    if (blocks) {
      const m = /^transformer_blocks\.(\d+)\./.exec(path);
      if (!m || Number(m[1]) < blocks.from || Number(m[1]) > blocks.to) continue;
    }
    out.set(path, layer);
  }
  return out;
}

/** Creates an adapter set for `targets` (paths -> layers), initialised from `seed`, attached. */
export function createLora(targets: Map<string, LoraTarget>, settings: LoraSettings, seed: number): LoraAdapterSet {
  if (targets.size === 0) throw new Error('LoRA: no layer matches the target patterns');
  const set = new LoraAdapterSet(settings);
  for (const [path, layer] of targets) set.add(path, layer);
  set.initialize(seed);
  return set.attach();
}
