/**
 * LoRA files in the diffusers / peft format (`pytorch_lora_weights.safetensors`, as written by
 * `SanaPipeline.save_lora_weights`): keys `transformer.<layer path>.lora_A.weight` / `.lora_B.weight` in
 * PyTorch layout, rank and alpha only in the header metadata `lora_adapter_metadata` (a JSON string of
 * the peft LoraConfig with every key prefixed `transformer.`).
 *
 * Reading also accepts peft's own naming (`base_model.model.` prefix, `.lora_A.default.weight`) and
 * files without metadata, where alpha defaults to r unless `<path>.alpha` tensors are present — what
 * diffusers does for such files.
 */
import { LoraAdapterSet, LoraSettings, LoraTarget } from '../lora';
import { SafetensorsFile, writeSafetensors, TensorToWrite } from './safetensors';

const A_SUFFIX = /\.lora_A(?:\.default)?\.weight$/;
const B_SUFFIX = /\.lora_B(?:\.default)?\.weight$/;
const ALPHA_SUFFIX = /\.alpha$/;

export class LoraFileError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'LoraFileError';
  }
}

export interface LoraFileLayer {
  path: string;
  a: { shape: number[]; data: Float32Array };
  b: { shape: number[]; data: Float32Array };
  rank: number;
  alpha: number;
}

export interface LoraFile {
  file: string;
  layers: LoraFileLayer[];
  /** Settings from the metadata (rank and alpha of the config; per-layer values are in `layers`). */
  settings: LoraSettings | null;
  targetModules: string[] | null;
}

/**
 * peft's rule for `rank_pattern` / `alpha_pattern` keys: the key (a plain name or a regular expression)
 * must match the end of the module path at a `.` boundary (`(.*\.)?key$`).
 */
function matchesPatternKey(path: string, key: string): boolean {
  try {
    return new RegExp(`^(?:.*\\.)?(?:${key})$`).test(path);
  } catch {
    return path === key || path.endsWith(`.${key}`);
  }
}

function stripPrefix(key: string): string {
  return key.replace(/^base_model\.model\./, '').replace(/^transformer\./, '');
}

/** Reads and validates a LoRA file (pairs of A/B, ranks agree); no model is needed. */
export function readLoraFile(file: string): LoraFile {
  const f = SafetensorsFile.open(file);
  try {
    let meta: Record<string, unknown> | null = null;
    if (f.metadata.lora_adapter_metadata) {
      try {
        const raw = JSON.parse(f.metadata.lora_adapter_metadata) as Record<string, unknown>;
        meta = {};
        for (const [k, v] of Object.entries(raw)) meta[k.replace(/^transformer\./, '')] = v;
      } catch (e) {
        throw new LoraFileError(file, `lora_adapter_metadata is not valid JSON (${(e as Error).message})`);
      }
    }
    if (meta?.use_dora === true) throw new LoraFileError(file, 'DoRA adapters (use_dora: true) are not supported, only plain LoRA');
    // rsLoRA scales by alpha / sqrt(r) instead of alpha / r: folded into alpha (alpha * sqrt(r) / r).
    const rsLora = meta?.use_rslora === true;
    const pairs = new Map<string, { a?: string; b?: string; alpha?: string }>();
    const unknown: string[] = [];
    for (const key of f.keys()) {
      const k = stripPrefix(key);
      const slot = A_SUFFIX.test(k) ? 'a' : B_SUFFIX.test(k) ? 'b' : ALPHA_SUFFIX.test(k) ? 'alpha' : null;
      if (!slot) {
        unknown.push(key);
        continue;
      }
      const path = k.replace(A_SUFFIX, '').replace(B_SUFFIX, '').replace(ALPHA_SUFFIX, '');
      const e = pairs.get(path) ?? {};
      e[slot] = key;
      pairs.set(path, e);
    }
    if (unknown.length) throw new LoraFileError(file, `unknown keys (not lora_A / lora_B / alpha): ${unknown.join(', ')}`);
    const rankPattern = (meta?.rank_pattern ?? {}) as Record<string, number>;
    const alphaPattern = (meta?.alpha_pattern ?? {}) as Record<string, number>;
    const metaRank = typeof meta?.r === 'number' ? meta.r : null;
    const metaAlpha = typeof meta?.lora_alpha === 'number' ? meta.lora_alpha : null;
    const layers: LoraFileLayer[] = [];
    const problems: string[] = [];
    for (const [path, e] of pairs) {
      if (!e.a || !e.b) {
        problems.push(`${path}: has ${e.a ? 'lora_A' : 'lora_B'} but no ${e.a ? 'lora_B' : 'lora_A'}`);
        continue;
      }
      const a = { shape: [...f.info(e.a).shape], data: f.readFloat32(e.a) };
      const b = { shape: [...f.info(e.b).shape], data: f.readFloat32(e.b) };
      const rank = a.shape[0];
      if (b.shape[1] !== rank) {
        problems.push(`${path}: rank mismatch, lora_A [${a.shape}] vs lora_B [${b.shape}]`);
        continue;
      }
      const patternRank = Object.entries(rankPattern).find(([p]) => matchesPatternKey(path, p))?.[1];
      const expectedRank = patternRank ?? metaRank;
      if (expectedRank !== null && expectedRank !== undefined && expectedRank !== rank) {
        problems.push(`${path}: rank ${rank} in the tensors but ${expectedRank} in the metadata`);
        continue;
      }
      let alpha: number;
      const patternAlpha = Object.entries(alphaPattern).find(([p]) => matchesPatternKey(path, p))?.[1];
      if (patternAlpha !== undefined) alpha = patternAlpha;
      else if (metaAlpha !== null) alpha = metaAlpha;
      else if (e.alpha) alpha = f.readFloat32(e.alpha)[0];
      else alpha = rank;
      if (rsLora) alpha *= Math.sqrt(rank);
      layers.push({ path, a, b, rank, alpha });
    }
    if (problems.length) throw new LoraFileError(file, `invalid LoRA tensors: ${problems.join('; ')}`);
    if (layers.length === 0) throw new LoraFileError(file, 'no LoRA tensors found');
    const settings: LoraSettings | null = metaRank !== null ? { rank: metaRank, alpha: (metaAlpha ?? metaRank) * (rsLora ? Math.sqrt(metaRank) : 1), dropout: Number(meta?.lora_dropout ?? 0), init: meta?.init_lora_weights === 'gaussian' ? 'gaussian' : 'kaiming' } : null;
    const targetModules = Array.isArray(meta?.target_modules) ? (meta!.target_modules as string[]) : null;
    return { file, layers: layers.sort((x, y) => (x.path < y.path ? -1 : 1)), settings, targetModules };
  } finally {
    f.close();
  }
}

/**
 * Builds an adapter set for a model from a LoRA file. Every layer the file names must exist among
 * `modelLayers` with matching in/out sizes; otherwise one error lists every offending key.
 */
export function loraFromFile(lora: LoraFile, modelLayers: Map<string, LoraTarget>): LoraAdapterSet {
  const problems: string[] = [];
  for (const l of lora.layers) {
    const target = modelLayers.get(l.path);
    if (!target) {
      problems.push(`transformer.${l.path}: no such adaptable layer in the model`);
      continue;
    }
    const [inF, outF] = 'inFeatures' in target ? [target.inFeatures, target.outFeatures] : [target.inChannels, target.outChannels];
    if (l.a.shape[1] !== inF || l.b.shape[0] !== outF) {
      problems.push(`transformer.${l.path}: lora_A [${l.a.shape}] / lora_B [${l.b.shape}] do not fit a layer ${inF} -> ${outF}`);
    }
  }
  if (problems.length) throw new LoraFileError(lora.file, `LoRA does not fit the model: ${problems.join('; ')}`);
  const base: LoraSettings = lora.settings ?? { rank: lora.layers[0].rank, alpha: lora.layers[0].alpha, dropout: 0, init: 'kaiming' };
  const set = new LoraAdapterSet(base);
  for (const l of lora.layers) {
    const layer = set.add(l.path, modelLayers.get(l.path)!, { ...base, rank: l.rank, alpha: l.alpha });
    layer.loraA.assignHost(toTf(l.a));
    layer.loraB.assignHost(toTf(l.b));
  }
  return set;
}

/** PyTorch [out, in(, 1, 1)] -> our in-memory [in, out] (1x1 conv kernels as [1, 1, in, out]). */
function toTf(t: { shape: number[]; data: Float32Array }): Float32Array {
  const [o, i] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[c * o + r] = t.data[r * i + c];
  return out;
}

/** Writes an adapter set as diffusers does (`transformer.` prefix, peft config in the metadata). */
export function saveLoraFile(file: string, set: LoraAdapterSet, targetModules: string[]): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [key, { shape, data }] of set.stateDict()) tensors.set(`transformer.${key}`, { dtype: 'F32', shape, data });
  const s = set.settings;
  const config: Record<string, unknown> = {
    r: s.rank,
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    target_modules: targetModules,
    bias: 'none',
    fan_in_fan_out: false,
    init_lora_weights: s.init === 'gaussian' ? 'gaussian' : true,
    peft_type: 'LORA',
    rank_pattern: {},
    alpha_pattern: {},
    use_dora: false,
    use_rslora: false,
  };
  const prefixed: Record<string, unknown> = {};
  for (const k of Object.keys(config).sort()) prefixed[`transformer.${k}`] = config[k];
  writeSafetensors(file, tensors, { format: 'pt', lora_adapter_metadata: JSON.stringify(prefixed, null, 2) });
}

/**
 * Restores the weights of an existing adapter set from a LoRA file it wrote (resuming a fine-tuning
 * run). Strict: every missing, unexpected or mis-shaped key is listed in one error.
 */
export function loadLoraWeightsInto(set: LoraAdapterSet, file: string): void {
  const f = SafetensorsFile.open(file);
  try {
    set.loadStateDict(f, { sourceName: file, prefix: 'transformer.' });
  } finally {
    f.close();
  }
}
