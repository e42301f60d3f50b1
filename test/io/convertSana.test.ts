import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { convertSanaCheckpoint } from '../../src/io/convertSana';
import { PthCheckpoint } from '../../src/io/pth';
import { SafetensorsCheckpoint } from '../../src/io/safetensors';
import { loadSanaTransformer } from '../../src/io/pretrained/transformer';
import { useTestBackend } from '../helpers';
import { main } from '../../src/cli/main';
import { parseByteSize, parseConvertOptions } from '../../src/cli/commands/convert';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'pth');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-convert-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await useTestBackend();
});

/** Row block `index` of `of` of a C-order tensor. */
function rows(data: Float32Array, index: number, of: number): Float32Array {
  const per = data.length / of;
  return data.subarray(index * per, (index + 1) * per);
}

describe('sana convert: original NVlabs checkpoint -> diffusers transformer folder', () => {
  const src = path.join(FIX, 'sana_original_tiny.pth');
  const out = path.join(tmp, 'sana10');
  let result: ReturnType<typeof convertSanaCheckpoint>;
  beforeAll(() => {
    result = convertSanaCheckpoint(src, out, { numCrossAttentionHeads: 1, imageSize: 512 });
  });

  test('config is read off the shapes', () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'transformer', 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      _class_name: 'SanaTransformer2DModel',
      in_channels: 4,
      out_channels: 4,
      num_layers: 2,
      num_attention_heads: 1,
      attention_head_dim: 32,
      num_cross_attention_heads: 1,
      cross_attention_head_dim: 32,
      cross_attention_dim: 32,
      caption_channels: 24,
      mlp_ratio: 2.5,
      patch_size: 1,
      sample_size: 16,
      interpolation_scale: null,
      qk_norm: null,
      guidance_embeds: false,
      norm_elementwise_affine: false,
    });
    expect(result.dropped.sort()).toEqual(['pos_embed', 'y_embedder.y_embedding']);
  });

  test('tensors follow the reference mapping (fused q/k/v and k/v split by rows)', () => {
    const orig = PthCheckpoint.open(src);
    const conv = SafetensorsCheckpoint.open(path.join(out, 'transformer'));
    try {
      const same = (target: string, source: string, chunk?: [number, number]) => {
        const want = orig.readFloat32(source);
        expect({ target, v: Array.from(conv.readFloat32(target)) }).toEqual({ target, v: Array.from(chunk ? rows(want, chunk[0], chunk[1]) : want) });
      };
      same('patch_embed.proj.weight', 'x_embedder.proj.weight');
      same('caption_projection.linear_2.bias', 'y_embedder.y_proj.fc2.bias');
      same('time_embed.emb.timestep_embedder.linear_1.weight', 't_embedder.mlp.0.weight');
      same('time_embed.linear.weight', 't_block.1.weight');
      same('caption_norm.weight', 'attention_y_norm.weight');
      same('transformer_blocks.1.attn1.to_q.weight', 'blocks.1.attn.qkv.weight', [0, 3]);
      same('transformer_blocks.1.attn1.to_k.weight', 'blocks.1.attn.qkv.weight', [1, 3]);
      same('transformer_blocks.1.attn1.to_v.weight', 'blocks.1.attn.qkv.weight', [2, 3]);
      same('transformer_blocks.0.attn2.to_k.weight', 'blocks.0.cross_attn.kv_linear.weight', [0, 2]);
      same('transformer_blocks.0.attn2.to_v.bias', 'blocks.0.cross_attn.kv_linear.bias', [1, 2]);
      same('transformer_blocks.0.ff.conv_depth.weight', 'blocks.0.mlp.depth_conv.conv.weight');
      same('transformer_blocks.0.attn1.to_out.0.bias', 'blocks.0.attn.proj.bias');
      same('proj_out.weight', 'final_layer.linear.weight');
      same('scale_shift_table', 'final_layer.scale_shift_table');
      expect(conv.info('transformer_blocks.0.attn1.to_q.weight').shape).toEqual([32, 32]);
    } finally {
      orig.close();
      conv.close();
    }
  });

  test('the folder loads strictly into SanaTransformer2DModel', () => {
    const model = loadSanaTransformer(path.join(out, 'transformer'));
    expect(model.numParameters()).toBeGreaterThan(0);
    model.dispose();
  });

  test('sharding writes an index', () => {
    const r = convertSanaCheckpoint(src, path.join(tmp, 'sharded'), { numCrossAttentionHeads: 1, maxShardBytes: 100_000 });
    expect(r.shards).toBeGreaterThan(1);
    const index = JSON.parse(fs.readFileSync(path.join(tmp, 'sharded', 'transformer', 'diffusion_pytorch_model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map).length).toBe(r.tensors);
    const ck = SafetensorsCheckpoint.open(path.join(tmp, 'sharded', 'transformer'));
    expect(ck.keys().length).toBe(r.tensors);
    ck.close();
  });
});

describe('sana convert: SANA-Sprint layout (qk-norm, guidance embedder, bf16, EMA entry)', () => {
  test('config and keys', () => {
    const src = path.join(FIX, 'sana_sprint_tiny.pth');
    const out = path.join(tmp, 'sprint');
    const r = convertSanaCheckpoint(src, out, { numCrossAttentionHeads: 1, key: 'state_dict_ema', dtype: 'bfloat16', imageSize: 2048 });
    expect(r.config).toMatchObject({ qk_norm: 'rms_norm_across_heads', guidance_embeds: true, interpolation_scale: 1.0, sample_size: 64 });
    expect(r.dropped.sort()).toEqual(['logvar_linear.bias', 'logvar_linear.weight', 'pos_embed', 'y_embedder.y_embedding']);
    const ck = SafetensorsCheckpoint.open(path.join(out, 'transformer'));
    try {
      expect(ck.info('time_embed.guidance_embedder.linear_1.weight').dtype).toBe('BF16');
      expect(ck.has('transformer_blocks.0.attn2.norm_k.weight')).toBe(true);
      const orig = PthCheckpoint.open(src, 'state_dict_ema');
      // bf16 -> float32 -> bf16 is lossless.
      expect(Array.from(ck.readFloat32('transformer_blocks.1.attn1.norm_q.weight'))).toEqual(Array.from(orig.readFloat32('blocks.1.attn.q_norm.weight')));
      orig.close();
    } finally {
      ck.close();
    }
    const model = loadSanaTransformer(path.join(out, 'transformer'));
    model.dispose();
  });
});

describe('sana convert: clear errors', () => {
  test('missing head count for an unofficial width', () => {
    expect(() => convertSanaCheckpoint(path.join(FIX, 'sana_original_tiny.pth'), path.join(tmp, 'x'))).toThrow(
      /cannot tell the cross-attention head count of a 32-wide model .*\(--num-cross-attention-heads\)/,
    );
  });
  test('wrong entry and non-SANA checkpoints', () => {
    expect(() => convertSanaCheckpoint(path.join(FIX, 'sana_original_tiny.pth'), path.join(tmp, 'x'), { key: 'ema' })).toThrow(/no "ema" entry \(top-level keys: state_dict\)/);
    expect(() => convertSanaCheckpoint(path.join(FIX, 'small_zip.pth'), path.join(tmp, 'x'))).toThrow(/small_zip\.pth: not an original SANA checkpoint: tensor "x_embedder\.proj\.weight" is missing/);
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
  });
});

describe('sana convert (command line)', () => {
  test('options: typed values and errors naming the option', () => {
    expect(parseConvertOptions('a.pth', { out: 'o' })).toEqual({
      checkpoint: 'a.pth', out: 'o', key: 'state_dict', imageSize: 1024, numCrossAttentionHeads: null, dtype: 'float32', maxShardBytes: 5e9,
    });
    expect(parseConvertOptions('a.pth', { out: 'o', key: 'state_dict_ema', imageSize: '512', numCrossAttentionHeads: '2', dtype: 'bfloat16', maxShardSize: '500MB' })).toMatchObject({
      key: 'state_dict_ema', imageSize: 512, numCrossAttentionHeads: 2, dtype: 'bfloat16', maxShardBytes: 5e8,
    });
    expect(parseByteSize('2KB')).toBe(2000);
    expect(() => parseConvertOptions('a.pth', { out: 'o', imageSize: 'big' })).toThrow(/--image-size must be a positive integer, got "big"/);
    expect(() => parseConvertOptions('a.pth', { out: 'o', maxShardSize: 'lots' })).toThrow(/--max-shard-size must be a size such as 5GB/);
    expect(() => parseConvertOptions('a.pth', { out: 'o', dtype: 'int8' })).toThrow(/--dtype must be float32, float16 or bfloat16, got "int8"/);
  });

  test('end to end: progress lines, the folder, and clear errors', async () => {
    const out = path.join(tmp, 'cli');
    const logs: string[] = [];
    const errors: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void logs.push(a.join(' ')));
    const err = jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void errors.push(a.join(' ')));
    try {
      const src = path.join(FIX, 'sana_original_tiny.pth');
      expect(await main(['convert', src, '--out', out, '--num-cross-attention-heads', '1', '--image-size', '512'])).toBe(0);
      expect(fs.existsSync(path.join(out, 'transformer', 'config.json'))).toBe(true);
      expect(logs.join('\n')).toMatch(/converting +\d+\/\d+ +\S+/);
      expect(logs[logs.length - 1]).toMatch(/^wrote .*transformer: \d+ tensors in 1 shard\(s\), float32; 2 layers, width 32, sample_size 16; dropped /);
      expect(await main(['convert', src, '--out', path.join(tmp, 'cli2')])).toBe(1);
      expect(errors.join('\n')).toMatch(/pass it \(--num-cross-attention-heads\)/);
      expect(await main(['convert', path.join(tmp, 'absent.pth'), '--out', out])).toBe(1);
      expect(errors.join('\n')).toMatch(/absent\.pth: no such checkpoint file/);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
  });
});
