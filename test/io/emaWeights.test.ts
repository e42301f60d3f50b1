/** Loading a training checkpoint's EMA weights into a transformer (`sana sample` of a run). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf } from '../../src/backend';
import { SanaTransformer2DModel } from '../../src/models/dit';
import { sanaTransformerPreset } from '../../src/models/dit/presets';
import { loadEmaWeights } from '../../src/io/pretrained/transformer';
import { writeSafetensors } from '../../src/io/safetensors';
import { useTestBackend } from '../helpers';

beforeAll(useTestBackend);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-ema-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

test('EMA weights replace the named parameters only; foreign keys and wrong shapes are errors naming the file', () => {
  const model = new SanaTransformer2DModel(sanaTransformerPreset('tiny')).initialize(0);
  const before = model.stateDict();
  const key = 'proj_out.weight';
  const shape = before.get(key)!.shape;
  const averaged = new Float32Array(before.get(key)!.data.length).fill(0.25);
  const good = path.join(root, 'ema.safetensors');
  writeSafetensors(good, new Map([[key, { dtype: 'F32' as const, shape, data: averaged }]]));
  loadEmaWeights(model, good);
  const after = model.stateDict();
  expect(Array.from(after.get(key)!.data)).toEqual(Array.from(averaged));
  expect(Array.from(after.get('proj_out.bias')!.data)).toEqual(Array.from(before.get('proj_out.bias')!.data));

  const foreign = path.join(root, 'foreign.safetensors');
  writeSafetensors(foreign, new Map([['not.a.weight', { dtype: 'F32' as const, shape: [2], data: new Float32Array(2) }]]));
  expect(() => loadEmaWeights(model, foreign)).toThrow(/foreign\.safetensors: "not\.a\.weight" is not a parameter of the transformer/);
  const misshaped = path.join(root, 'misshaped.safetensors');
  writeSafetensors(misshaped, new Map([[key, { dtype: 'F32' as const, shape: [1, averaged.length], data: averaged }]]));
  expect(() => loadEmaWeights(model, misshaped)).toThrow(/misshaped\.safetensors/);
  const tensorsBefore = tf.memory().numTensors;
  loadEmaWeights(model, good);
  expect(tf.memory().numTensors).toBe(tensorsBefore);
  model.dispose();
});
