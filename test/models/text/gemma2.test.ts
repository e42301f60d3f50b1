/**
 * Gemma2Model: parity with transformers (the shared golden case and the extra cases under
 * test/fixtures/gemma2, made by scripts/fixtures/make_gemma2_fixtures.py), per-layer hidden states,
 * padding, config layouts of transformers 4 and 5, loading (prefix, bf16 shards, strict errors), leaks.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf } from '../../../src/backend';
import { loadCase } from '../../../src/golden/case';
import { gemma2Runner } from '../../../src/golden/runners/gemma2';
import { readSafetensors, toInt32, writeSafetensors, TensorToWrite } from '../../../src/io/safetensors';
import { gemmaEncoderIdentity, loadGemma2Model, readGemma2Config } from '../../../src/io/pretrained/gemma';
import { Gemma2Model, parseGemma2Config, rotaryInverseFrequencies, scaledInverseFrequencies, attentionBias, MASK_BIAS } from '../../../src/models/text';
import { expectGoldenPass, expectNoLeak, fixtureCaseDir, fixtureCaseNames, goldenCase, runFixtureCase, useTestBackend } from '../../helpers';

const TINY = goldenCase('gemma2_tiny');

let tmp: string;
beforeAll(async () => {
  await useTestBackend();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma2-test-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function tinyInputs() {
  const c = loadCase(TINY);
  const ids = c.io.get('input_ids')!;
  const mask = c.io.get('attention_mask')!;
  return { c, ids: toInt32(ids, 'ids'), mask: toInt32(mask, 'mask'), shape: ids.shape as [number, number] };
}

describe('parity with transformers', () => {
  test('golden gemma2_tiny passes', async () => {
    await expectGoldenPass('gemma2_tiny');
  });

  test.each(fixtureCaseNames('gemma2'))('extra case %s passes', async (name) => {
    const results = await runFixtureCase('gemma2', name, gemma2Runner);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  test('every layer output matches the reference at valid positions', () => {
    for (const dir of [TINY, ...fixtureCaseNames('gemma2').map((n) => fixtureCaseDir('gemma2', n))]) {
      const c = loadCase(dir);
      const model = loadGemma2Model(c.file('model.safetensors'), { config: parseGemma2Config(c.config, dir) });
      const ids = c.io.get('input_ids')!;
      const valid = toInt32(c.io.get('valid_positions')!, 'valid');
      const out = tf.tidy(() => {
        const r = model.forward(tf.tensor2d(toInt32(ids, 'ids'), ids.shape as [number, number], 'int32'), tf.tensor2d(toInt32(c.io.get('attention_mask')!, 'm'), ids.shape as [number, number], 'int32'), { outputHiddenStates: true });
        return r.hiddenStates!;
      });
      expect(out.length).toBe(model.config.num_hidden_layers + 1);
      const names = [...c.io.keys()].filter((k) => k.startsWith('debug.hidden_states.'));
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) {
        const ref = c.io.get(name)!;
        const got = out[Number(name.split('.').pop())].dataSync();
        const hidden = ref.shape[2];
        let worst = 0;
        let refMax = 0;
        for (let p = 0; p < valid.length; p++) {
          if (!valid[p]) continue;
          for (let j = 0; j < hidden; j++) {
            const r = (ref.data as Float32Array)[p * hidden + j];
            worst = Math.max(worst, Math.abs(got[p * hidden + j] - r));
            refMax = Math.max(refMax, Math.abs(r));
          }
        }
        // float32 round-off relative to the layer's scale (the residual stream grows layer by layer).
        expect({ name, dir, ok: worst <= 2e-5 * Math.max(1, refMax) }).toEqual({ name, dir, ok: true });
      }
      tf.dispose(out);
      model.dispose();
    }
  });

  test('right padding does not change the rows of real tokens', () => {
    const { c, ids, mask, shape } = tinyInputs();
    const model = loadGemma2Model(c.file('model.safetensors'), { config: parseGemma2Config(c.config) });
    const [b, s] = shape;
    const hidden = model.config.hidden_size;
    const batched = tf.tidy(() => model.forward(tf.tensor2d(ids, shape, 'int32'), tf.tensor2d(mask, shape, 'int32')).lastHiddenState.arraySync());
    for (let r = 0; r < b; r++) {
      const n = mask.subarray(r * s, (r + 1) * s).reduce((a, v) => a + v, 0);
      const alone = tf.tidy(() => model.forward(tf.tensor2d(ids.slice(r * s, r * s + n), [1, n], 'int32')).lastHiddenState.arraySync())[0];
      for (let p = 0; p < n; p++) for (let j = 0; j < hidden; j++) expect(Math.abs(alone[p][j] - batched[r][p][j])).toBeLessThan(1e-5);
    }
    model.dispose();
  });

  test('forward leaks no tensor', async () => {
    const { c, ids, mask, shape } = tinyInputs();
    const model = loadGemma2Model(c.file('model.safetensors'), { config: parseGemma2Config(c.config) });
    const idsT = tf.tensor2d(ids, shape, 'int32');
    const maskT = tf.tensor2d(mask, shape, 'int32');
    await expectNoLeak(() => {
      const out = model.forward(idsT, maskT, { outputHiddenStates: true });
      tf.dispose([out.lastHiddenState, ...out.hiddenStates!]);
    });
    tf.dispose([idsT, maskT]);
    model.dispose();
  });

  test('bad inputs are clear errors', () => {
    const config = parseGemma2Config(loadCase(TINY).config);
    const model = new Gemma2Model(config).initialize(0);
    const ids = tf.tensor2d([[2, 5, 6]], [1, 3], 'int32');
    expect(() => model.forward(ids.toFloat() as tf.Tensor2D)).toThrow(/input_ids must be int32/);
    expect(() => model.forward(ids, tf.tensor2d([[1, 1]], [1, 2], 'int32'))).toThrow(/attention_mask must have the shape of input_ids \[1, 3\]/);
    model.dispose();
  });
});

describe('building blocks', () => {
  test('RoPE inverse frequencies follow 1 / theta^(2i/d) in float32', () => {
    const inv = rotaryInverseFrequencies(8, 10000);
    expect(Array.from(inv)).toEqual([1, 0.1, 0.01, 0.001].map((x) => Math.fround(x)));
  });

  test('attention bias: causal, window q - w < kv <= q, padded keys masked', () => {
    const bias = tf.tidy(() => attentionBias(1, 5, tf.tensor2d([[1, 1, 1, 1, 0]], [1, 5], 'int32'), 2).arraySync() as number[][][][]);
    const allowed = bias[0][0].map((row) => row.map((v) => (v === 0 ? 1 : v === MASK_BIAS ? 0 : NaN)));
    expect(allowed).toEqual([
      [1, 0, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [0, 1, 1, 0, 0],
      [0, 0, 1, 1, 0],
      [0, 0, 0, 1, 0], // a padded query row keeps its real keys; the padded key itself is masked
    ]);
  });
});

describe('config', () => {
  const v5 = () => JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));

  test('transformers 4 and 5 layouts give the same config', () => {
    const a = parseGemma2Config(v5());
    const old = v5();
    delete old.rope_parameters;
    delete old.layer_types;
    delete old.dtype;
    delete old.use_bidirectional_attention;
    Object.assign(old, { rope_theta: 10000, torch_dtype: 'bfloat16', hidden_act: 'gelu_pytorch_tanh', cache_implementation: 'hybrid', _name_or_path: 'google/gemma-2-2b-it' });
    expect(parseGemma2Config(old)).toEqual(a);
    expect(a.layer_types).toEqual(['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention']);
    expect(a.rope_theta).toBe(10000);
  });

  test('the real Gemma-2-2B config (transformers 4.x text_encoder/config.json) parses with its defaults', () => {
    const c = parseGemma2Config({ architectures: ['Gemma2Model'], model_type: 'gemma2', hidden_size: 2304, num_hidden_layers: 26, rope_theta: 10000.0, torch_dtype: 'bfloat16', transformers_version: '4.44.2' }, 'text_encoder/config.json');
    expect(c).toMatchObject({ head_dim: 256, num_attention_heads: 8, num_key_value_heads: 4, query_pre_attn_scalar: 256, sliding_window: 4096, attn_logit_softcapping: 50, vocab_size: 256000 });
    expect(c.layer_types.filter((t) => t === 'sliding_attention').length).toBe(13);
    expect(new Gemma2Model(c).numParameters()).toBe(2614341888);
  });

  test.each([
    [{ hidden_size: '32' }, /field "hidden_size": expected an integer >= 1, got "32"/],
    [{ num_key_value_heads: 3 }, /field "num_key_value_heads": 3 must divide num_attention_heads \(4\)/],
    [{ layer_types: ['sliding_attention'] }, /field "layer_types": expected a list of 4 entries/],
    [{ layer_types: ['sliding_attention', 'global', 'sliding_attention', 'full_attention'] }, /field "layer_types\[1\]"/],
    [{ rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 2 } }, /field "rope_parameters.rope_type": supported RoPE types are "default", "linear" and "dynamic", got "yarn"/],
    [{ rope_parameters: { rope_type: 'linear', rope_theta: 10000 } }, /field "rope_parameters.factor": "linear" RoPE needs a factor >= 1/],
    [{ rope_parameters: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5 } }, /field "rope_parameters.partial_rotary_factor"/],
    [{ rope_parameters: { rope_type: 'default', rope_theta: -1 } }, /field "rope_parameters.rope_theta": expected a positive number/],
    [{ use_bidirectional_attention: true }, /field "use_bidirectional_attention"/],
    [{ sliding_windows: 4 }, /my\/config.json: field "sliding_windows": not a Gemma-2 config field/],
    [{ head_dim: 7 }, /field "head_dim": rotary embeddings need an even head_dim/],
  ])('invalid config %j names the file and field', (patch, message) => {
    expect(() => parseGemma2Config({ ...v5(), ...patch }, 'my/config.json')).toThrow(message);
  });

  test('RoPE scaling in either layout: rope_parameters (5.x) or rope_scaling with "type" (4.x)', () => {
    const a = parseGemma2Config({ ...v5(), rope_parameters: { rope_type: 'linear', factor: 4, rope_theta: 500 } });
    const old = { ...v5(), rope_theta: 500, rope_scaling: { type: 'linear', factor: 4 } };
    delete old.rope_parameters;
    expect(parseGemma2Config(old)).toEqual(a);
    expect(a.rope_scaling).toEqual({ rope_type: 'linear', factor: 4 });
    expect(parseGemma2Config(v5()).rope_scaling).toBeNull();
  });

  test('scaled frequencies: linear divides by the factor; dynamic changes nothing up to max_position_embeddings', () => {
    const base = rotaryInverseFrequencies(8, 100);
    expect(Array.from(scaledInverseFrequencies(8, 100, { rope_type: 'linear', factor: 4 }, 5, 16))).toEqual(Array.from(base).map((x) => Math.fround(x / 4)));
    expect(scaledInverseFrequencies(8, 100, { rope_type: 'dynamic', factor: 2 }, 16, 16)).toEqual(base);
    const longer = scaledInverseFrequencies(8, 100, { rope_type: 'dynamic', factor: 2 }, 32, 16);
    expect(longer[0]).toBe(1);
    expect(longer[3]).toBeLessThan(base[3]); // a larger base: lower frequencies
  });

  test('unknown fields can be allowed explicitly', () => {
    expect(parseGemma2Config({ ...v5(), some_future_field: 1 }, 'c', { allowUnknownFields: true }).hidden_size).toBe(32);
  });
});

describe('loading', () => {
  const src = () => readSafetensors(path.join(TINY, 'model.safetensors')).tensors;

  function writeFolder(name: string, tensors: Map<string, TensorToWrite>, config = path.join(TINY, 'config.json')): string {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(config, path.join(dir, 'config.json'));
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    return dir;
  }

  function bf16(x: number): number {
    const f = new Float32Array([x]);
    const u = new Uint32Array(f.buffer);
    u[0] = ((u[0] + 0x7fff + ((u[0] >> 16) & 1)) >>> 16) << 16;
    return f[0];
  }

  test('a bf16 causal-LM checkpoint in shards (model. prefix, lm_head) loads, upcast to float32', () => {
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(TINY, 'config.json'), path.join(dir, 'config.json'));
    const tensors = [...src().entries()];
    const weightMap: Record<string, string> = {};
    const shards: Array<Map<string, TensorToWrite>> = [new Map(), new Map()];
    tensors.forEach(([k, t], i) => {
      const shard = i < tensors.length / 2 ? 0 : 1;
      shards[shard].set(`model.${k}`, { dtype: 'BF16', shape: t.shape, data: t.data });
      weightMap[`model.${k}`] = `model-0000${shard + 1}-of-00002.safetensors`;
    });
    const emb = src().get('embed_tokens.weight')!;
    shards[1].set('lm_head.weight', { dtype: 'BF16', shape: emb.shape, data: emb.data });
    weightMap['lm_head.weight'] = 'model-00002-of-00002.safetensors';
    shards.forEach((s, i) => writeSafetensors(path.join(dir, `model-0000${i + 1}-of-00002.safetensors`), s));
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));

    const model = loadGemma2Model(dir);
    const loaded = model.stateDict();
    for (const [k, t] of src()) {
      const want = Float32Array.from(t.data as Float32Array, bf16);
      expect({ k, same: Buffer.from(loaded.get(k)!.data.buffer).equals(Buffer.from(want.buffer)) }).toEqual({ k, same: true });
    }
    model.dispose();
  });

  test('a missing weight is an error naming the key', () => {
    const t = new Map<string, TensorToWrite>([...src().entries()].map(([k, v]) => [k, v as TensorToWrite]));
    t.delete('norm.weight');
    const dir = writeFolder('missing', t);
    expect(() => loadGemma2Model(dir)).toThrow(/missing keys \(1\): norm\.weight/);
  });

  test('a mis-shaped weight is an error naming the key and both shapes', () => {
    const t = new Map<string, TensorToWrite>([...src().entries()].map(([k, v]) => [k, v as TensorToWrite]));
    t.set('layers.1.mlp.up_proj.weight', { dtype: 'F32', shape: [63, 32], data: new Float32Array(63 * 32) });
    const dir = writeFolder('misshaped', t);
    expect(() => loadGemma2Model(dir)).toThrow(/layers\.1\.mlp\.up_proj\.weight expected \[64,32\] got \[63,32\]/);
  });

  test('a folder without config.json or weights is a clear error', () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty, { recursive: true });
    expect(() => loadGemma2Model(empty)).toThrow(/config\.json: Gemma-2 config not found/);
    fs.copyFileSync(path.join(TINY, 'config.json'), path.join(empty, 'config.json'));
    expect(() => loadGemma2Model(empty)).toThrow(/no weights found/);
    expect(readGemma2Config(empty).hidden_size).toBe(32);
  });

  test('encoder identity changes with the weights', () => {
    const t = new Map<string, TensorToWrite>([...src().entries()].map(([k, v]) => [k, v as TensorToWrite]));
    const dir = writeFolder('ident', t);
    const a = gemmaEncoderIdentity(dir);
    expect(gemmaEncoderIdentity(dir)).toBe(a);
    const w = t.get('norm.weight')!;
    t.set('norm.weight', { ...w, data: Float32Array.from(w.data as Float32Array, (x) => x + 1) });
    writeSafetensors(path.join(dir, 'model.safetensors'), t);
    expect(gemmaEncoderIdentity(dir)).not.toBe(a);
  });
});
