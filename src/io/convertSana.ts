/**
 * Converts an original NVlabs SANA checkpoint (`.pth`, e.g. `Sana_1600M_1024px.pth`, keys such as
 * `blocks.0.attn.qkv.weight`) into a diffusers-style `transformer/` folder (`config.json` +
 * `diffusion_pytorch_model*.safetensors`, keys such as `transformer_blocks.0.attn1.to_q.weight`),
 * with the key mapping of diffusers' `scripts/convert_sana_to_diffusers.py`:
 *
 * | original                                   | diffusers                                                  |
 * |--------------------------------------------|------------------------------------------------------------|
 * | x_embedder.proj.*                          | patch_embed.proj.*                                         |
 * | y_embedder.y_proj.fc1/fc2.*                | caption_projection.linear_1/linear_2.*                     |
 * | t_embedder.mlp.0/2.*                       | time_embed.emb.timestep_embedder.linear_1/2.*              |
 * |   (with cfg_embedder: SANA-Sprint)         | time_embed.timestep_embedder.* and time_embed.guidance_embedder.* |
 * | t_block.1.*                                | time_embed.linear.*                                        |
 * | attention_y_norm.weight                    | caption_norm.weight                                        |
 * | blocks.N.scale_shift_table                 | transformer_blocks.N.scale_shift_table                     |
 * | blocks.N.attn.qkv.weight (rows q, k, v)    | transformer_blocks.N.attn1.to_q/to_k/to_v.weight           |
 * | blocks.N.attn.q_norm/k_norm.weight         | transformer_blocks.N.attn1.norm_q/norm_k.weight            |
 * | blocks.N.attn.proj.*                       | transformer_blocks.N.attn1.to_out.0.*                      |
 * | blocks.N.mlp.inverted_conv/depth_conv/point_conv.conv.* | transformer_blocks.N.ff.conv_inverted/conv_depth/conv_point.* |
 * | blocks.N.cross_attn.q_linear.*             | transformer_blocks.N.attn2.to_q.*                          |
 * | blocks.N.cross_attn.kv_linear.* (rows k, v)| transformer_blocks.N.attn2.to_k/to_v.*                     |
 * | blocks.N.cross_attn.q_norm/k_norm.weight   | transformer_blocks.N.attn2.norm_q/norm_k.weight            |
 * | blocks.N.cross_attn.proj.*                 | transformer_blocks.N.attn2.to_out.0.*                      |
 * | final_layer.linear.*, final_layer.scale_shift_table | proj_out.*, scale_shift_table                     |
 *
 * Dropped, as the reference does: `y_embedder.y_embedding` (the null caption), `pos_embed` (diffusers
 * recomputes the sin-cos table), `logvar_linear.*`. Any other leftover key is an error listing it.
 *
 * The config is read off the tensor shapes (layers, width, channels, patch size, MLP ratio, qk-norm,
 * guidance embedding) rather than from a model name; what shapes cannot tell (the cross-attention head
 * count and the training resolution) comes from options, with the official models' values as defaults.
 * Tensors are read lazily from the `.pth` and written shard by shard, so a 6 GB checkpoint is never
 * held whole; the output folder appears atomically.
 */
import * as path from 'path';
import { PthFile, PthTensor } from './pth';
import { HostTensor, SafetensorsDType, TensorToWrite, toFloat32, writeSafetensors } from './safetensors';
import { writeDirAtomic, writeFileAtomic } from './atomic';
import { SanaTransformerConfig, parseSanaTransformerConfig, toDiffusersConfigJson } from '../models/dit/config';

/** Cross-attention heads of the official models by model width (the `num_heads` of Sana's configs). */
const CROSS_HEADS_BY_WIDTH: Record<number, number> = { 1152: 16, 2240: 20 };
/** diffusers' interpolation scale by training resolution (the reference script's table). */
const INTERPOLATION_SCALE: Record<number, number | null> = { 512: null, 1024: null, 2048: 1.0, 4096: 2.0 };
const DROPPED = [/^y_embedder\.y_embedding$/, /^pos_embed$/, /^logvar_linear\./];
const WEIGHTS_NAME = 'diffusion_pytorch_model.safetensors';
const INDEX_NAME = 'diffusion_pytorch_model.safetensors.index.json';
const DIFFUSERS_VERSION = '0.40.0.dev0';

export type ConvertDType = 'float32' | 'float16' | 'bfloat16';
const OUT_DTYPE: Record<ConvertDType, SafetensorsDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
const BYTES: Record<ConvertDType, number> = { float32: 4, float16: 2, bfloat16: 2 };

export interface ConvertSanaOptions {
  /** Training resolution in pixels (sample_size = image_size / 32; sets interpolation_scale). Default 1024. */
  imageSize?: number;
  /** Cross-attention heads; default by model width (1152 -> 16, 2240 -> 20). */
  numCrossAttentionHeads?: number;
  /** Self-attention head width (32 in every SANA model). */
  attentionHeadDim?: number;
  /** Entry of the checkpoint holding the weights (default `state_dict`; e.g. `state_dict_ema`). */
  key?: string;
  /** Weight type written (default float32, like the reference's default). */
  dtype?: ConvertDType;
  /** Largest shard in bytes (default 5 GB, the reference's `max_shard_size`). */
  maxShardBytes?: number;
  /** Called after each tensor is written. */
  onProgress?: (done: number, total: number, key: string) => void;
}

/** One output tensor: where it comes from, and which row block of the source (for fused q/k/v). */
interface Mapping {
  target: string;
  source: string;
  chunk?: { index: number; of: number };
}

export interface ConvertSanaResult {
  config: SanaTransformerConfig;
  /** Folder written: `<out>/transformer`. */
  dir: string;
  tensors: number;
  shards: number;
  dropped: string[];
}

/** The mapping for a checkpoint with these keys (see the file header). */
export function sanaKeyMapping(keys: Set<string>, numLayers: number): Mapping[] {
  const m: Mapping[] = [];
  const add = (target: string, source: string, chunk?: Mapping['chunk']) => m.push({ target, source, chunk });
  const wb = (target: string, source: string) => {
    add(`${target}.weight`, `${source}.weight`);
    add(`${target}.bias`, `${source}.bias`);
  };
  wb('patch_embed.proj', 'x_embedder.proj');
  wb('caption_projection.linear_1', 'y_embedder.y_proj.fc1');
  wb('caption_projection.linear_2', 'y_embedder.y_proj.fc2');
  if (keys.has('cfg_embedder.mlp.0.weight')) {
    // SANA-Sprint: timestep and guidance embedders side by side.
    wb('time_embed.timestep_embedder.linear_1', 't_embedder.mlp.0');
    wb('time_embed.timestep_embedder.linear_2', 't_embedder.mlp.2');
    wb('time_embed.guidance_embedder.linear_1', 'cfg_embedder.mlp.0');
    wb('time_embed.guidance_embedder.linear_2', 'cfg_embedder.mlp.2');
  } else {
    wb('time_embed.emb.timestep_embedder.linear_1', 't_embedder.mlp.0');
    wb('time_embed.emb.timestep_embedder.linear_2', 't_embedder.mlp.2');
  }
  wb('time_embed.linear', 't_block.1');
  add('caption_norm.weight', 'attention_y_norm.weight');
  for (let i = 0; i < numLayers; i++) {
    const s = `blocks.${i}`;
    const t = `transformer_blocks.${i}`;
    add(`${t}.scale_shift_table`, `${s}.scale_shift_table`);
    ['to_q', 'to_k', 'to_v'].forEach((name, j) => add(`${t}.attn1.${name}.weight`, `${s}.attn.qkv.weight`, { index: j, of: 3 }));
    if (keys.has(`${s}.attn.qkv.bias`)) ['to_q', 'to_k', 'to_v'].forEach((name, j) => add(`${t}.attn1.${name}.bias`, `${s}.attn.qkv.bias`, { index: j, of: 3 }));
    if (keys.has(`${s}.attn.q_norm.weight`)) {
      add(`${t}.attn1.norm_q.weight`, `${s}.attn.q_norm.weight`);
      add(`${t}.attn1.norm_k.weight`, `${s}.attn.k_norm.weight`);
    }
    wb(`${t}.attn1.to_out.0`, `${s}.attn.proj`);
    wb(`${t}.ff.conv_inverted`, `${s}.mlp.inverted_conv.conv`);
    wb(`${t}.ff.conv_depth`, `${s}.mlp.depth_conv.conv`);
    add(`${t}.ff.conv_point.weight`, `${s}.mlp.point_conv.conv.weight`);
    wb(`${t}.attn2.to_q`, `${s}.cross_attn.q_linear`);
    add(`${t}.attn2.to_k.weight`, `${s}.cross_attn.kv_linear.weight`, { index: 0, of: 2 });
    add(`${t}.attn2.to_v.weight`, `${s}.cross_attn.kv_linear.weight`, { index: 1, of: 2 });
    add(`${t}.attn2.to_k.bias`, `${s}.cross_attn.kv_linear.bias`, { index: 0, of: 2 });
    add(`${t}.attn2.to_v.bias`, `${s}.cross_attn.kv_linear.bias`, { index: 1, of: 2 });
    if (keys.has(`${s}.cross_attn.q_norm.weight`)) {
      add(`${t}.attn2.norm_q.weight`, `${s}.cross_attn.q_norm.weight`);
      add(`${t}.attn2.norm_k.weight`, `${s}.cross_attn.k_norm.weight`);
    }
    wb(`${t}.attn2.to_out.0`, `${s}.cross_attn.proj`);
  }
  wb('proj_out', 'final_layer.linear');
  add('scale_shift_table', 'final_layer.scale_shift_table');
  return m;
}

function shapeOf(tensors: Map<string, PthTensor>, key: string, file: string): number[] {
  const t = tensors.get(key);
  if (!t) throw new Error(`${file}: not an original SANA checkpoint: tensor "${key}" is missing`);
  return t.shape;
}

/** Reads the transformer config off the checkpoint's shapes (see the file header). */
export function inferSanaConfig(tensors: Map<string, PthTensor>, file: string, opts: ConvertSanaOptions = {}): SanaTransformerConfig {
  const [inner, inChannels, patch] = shapeOf(tensors, 'x_embedder.proj.weight', file);
  const [, captionChannels] = shapeOf(tensors, 'y_embedder.y_proj.fc1.weight', file);
  const layers = new Set([...tensors.keys()].map((k) => /^blocks\.(\d+)\./.exec(k)?.[1]).filter((x): x is string => x !== undefined));
  const numLayers = layers.size;
  if (numLayers === 0) throw new Error(`${file}: not an original SANA checkpoint: no blocks.N.* tensors`);
  for (let i = 0; i < numLayers; i++) if (!layers.has(String(i))) throw new Error(`${file}: transformer blocks are not numbered 0..${numLayers - 1} (blocks.${i} missing)`);
  const [hiddenX2] = shapeOf(tensors, 'blocks.0.mlp.inverted_conv.conv.weight', file);
  const [finalOut] = shapeOf(tensors, 'final_layer.linear.weight', file);
  const headDim = opts.attentionHeadDim ?? 32;
  if (inner % headDim) throw new Error(`${file}: model width ${inner} is not a multiple of the attention head width ${headDim} (set attentionHeadDim)`);
  const crossHeads = opts.numCrossAttentionHeads ?? CROSS_HEADS_BY_WIDTH[inner];
  if (!crossHeads) {
    throw new Error(`${file}: cannot tell the cross-attention head count of a ${inner}-wide model (official widths: ${Object.keys(CROSS_HEADS_BY_WIDTH).join(', ')}); pass it (--num-cross-attention-heads)`);
  }
  if (inner % crossHeads) throw new Error(`${file}: model width ${inner} is not divisible by ${crossHeads} cross-attention heads`);
  const imageSize = opts.imageSize ?? 1024;
  if (!Number.isInteger(imageSize) || imageSize <= 0 || imageSize % 32) throw new Error(`image size must be a positive multiple of 32, got ${imageSize}`);
  const raw = {
    in_channels: inChannels,
    out_channels: finalOut / (patch * patch),
    num_attention_heads: inner / headDim,
    attention_head_dim: headDim,
    num_layers: numLayers,
    num_cross_attention_heads: crossHeads,
    cross_attention_head_dim: inner / crossHeads,
    cross_attention_dim: inner,
    caption_channels: captionChannels,
    mlp_ratio: hiddenX2 / 2 / inner,
    attention_bias: tensors.has('blocks.0.attn.qkv.bias'),
    sample_size: imageSize / 32,
    patch_size: patch,
    norm_elementwise_affine: false,
    norm_eps: 1e-6,
    interpolation_scale: imageSize in INTERPOLATION_SCALE ? INTERPOLATION_SCALE[imageSize] : null,
    guidance_embeds: tensors.has('cfg_embedder.mlp.0.weight'),
    qk_norm: tensors.has('blocks.0.attn.q_norm.weight') ? 'rms_norm_across_heads' : null,
  };
  return parseSanaTransformerConfig(raw, `${file} (inferred config)`);
}

/** Rows [index/of, (index+1)/of) of a tensor along dim 0 (C order: one contiguous block). */
function rowChunk(t: HostTensor, index: number, of: number, what: string): HostTensor {
  const rows = t.shape[0];
  if (rows % of) throw new Error(`${what}: ${rows} rows cannot be split in ${of}`);
  const per = t.data.length / of;
  const shape = [rows / of, ...t.shape.slice(1)];
  return { dtype: t.dtype, shape, data: t.data.subarray(index * per, (index + 1) * per) as HostTensor['data'] };
}

/** Converts `pthFile` into `<outDir>/transformer/` (replaced atomically); see the file header. */
export function convertSanaCheckpoint(pthFile: string, outDir: string, opts: ConvertSanaOptions = {}): ConvertSanaResult {
  const dtype = opts.dtype ?? 'float32';
  if (!(dtype in OUT_DTYPE)) throw new Error(`dtype must be one of ${Object.keys(OUT_DTYPE).join(', ')}, got "${dtype}"`);
  const limit = opts.maxShardBytes ?? 5 * 1000 ** 3;
  const f = PthFile.open(pthFile);
  try {
    const key = opts.key ?? 'state_dict';
    if (!f.topLevelKeys().includes(key)) {
      throw new Error(`${pthFile}: no "${key}" entry (top-level keys: ${f.topLevelKeys().join(', ') || 'none'}); choose one with --key`);
    }
    const tensors = f.tensors(key);
    const config = inferSanaConfig(tensors, pthFile, opts);
    const mapping = sanaKeyMapping(new Set(tensors.keys()), config.num_layers);

    // 1. Every source tensor must be used or knowingly dropped (the reference asserts the same).
    const used = new Set(mapping.map((m) => m.source));
    const missing = [...used].filter((k) => !tensors.has(k));
    if (missing.length) throw new Error(`${pthFile}: not an original SANA checkpoint: missing ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ` ... (${missing.length} in all)` : ''}`);
    const dropped = [...tensors.keys()].filter((k) => !used.has(k) && DROPPED.some((re) => re.test(k)));
    const leftover = [...tensors.keys()].filter((k) => !used.has(k) && !DROPPED.some((re) => re.test(k)));
    if (leftover.length) throw new Error(`${pthFile}: keys with no diffusers counterpart: ${leftover.slice(0, 20).join(', ')}${leftover.length > 20 ? ` ... (${leftover.length} in all)` : ''}`);

    // 2. Shards in key order, sized from shapes alone.
    const sorted = [...mapping].sort((a, b) => (a.target < b.target ? -1 : 1));
    const sizeOf = (m: Mapping) => (tensors.get(m.source)!.numel / (m.chunk?.of ?? 1)) * BYTES[dtype];
    const shards: Mapping[][] = [];
    let cur: Mapping[] = [];
    let bytes = 0;
    for (const m of sorted) {
      if (cur.length && bytes + sizeOf(m) > limit) {
        shards.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(m);
      bytes += sizeOf(m);
    }
    if (cur.length) shards.push(cur);
    const shardName = (i: number) => (shards.length === 1 ? WEIGHTS_NAME : `diffusion_pytorch_model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);

    // 3. Write: each shard's tensors are read, sliced and cast, written, then released.
    const dir = path.join(outDir, 'transformer');
    let done = 0;
    writeDirAtomic(dir, (tmp) => {
      writeFileAtomic(path.join(tmp, 'config.json'), `${JSON.stringify({ ...toDiffusersConfigJson(config), _diffusers_version: DIFFUSERS_VERSION }, null, 2)}\n`);
      const weightMap: Record<string, string> = {};
      let total = 0;
      shards.forEach((shard, i) => {
        const out = new Map<string, TensorToWrite>();
        for (const m of shard) {
          let t = tensors.get(m.source)!.read();
          if (m.chunk) t = rowChunk(t, m.chunk.index, m.chunk.of, `${pthFile}: ${m.source}`);
          // Float32 in memory; the writer rounds to F16/BF16 when asked.
          const data = toFloat32(t, m.source);
          out.set(m.target, { dtype: OUT_DTYPE[dtype], shape: t.shape, data });
          weightMap[m.target] = shardName(i);
          total += data.length * BYTES[dtype];
          opts.onProgress?.(++done, mapping.length, m.target);
        }
        writeSafetensors(path.join(tmp, shardName(i)), out, { format: 'pt' });
      });
      if (shards.length > 1) writeFileAtomic(path.join(tmp, INDEX_NAME), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
    });
    return { config, dir, tensors: mapping.length, shards: shards.length, dropped };
  } finally {
    f.close();
  }
}
