/**
 * The Fashion-MNIST judge: shapes, the input check, config validation, no tensor leak, and the
 * save/load round trip of its folder (config.json + model.safetensors).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf, Tensor4D } from '../../../src/backend';
import { useTestBackend, expectNoLeak } from '../../helpers';
import { FashionMnistClassifier, parseClassifierConfig } from '../../../src/models/classifier/fashionMnist';
import { loadFashionMnistClassifier, saveFashionMnistClassifier } from '../../../src/io/pretrained/classifier';
import { rngFor } from '../../../src/nn/random';

beforeAll(useTestBackend);

const input = (b: number): Tensor4D => tf.tensor4d(rngFor(1, 'classifier-test').uniformArray(b * 28 * 28, -1, 1), [b, 28, 28, 1]);

test('logits [B, 10] and features [B, hidden_dim]; logits = classifier(features)', () => {
  const model = new FashionMnistClassifier().initialize(0);
  const x = input(3);
  const logits = model.forward(x);
  const feats = model.features(x);
  expect(logits.shape).toEqual([3, 10]);
  expect(feats.shape).toEqual([3, model.featureDim]);
  const again = model.classifier.forward(feats);
  expect(Array.from(again.dataSync())).toEqual(Array.from(logits.dataSync()));
  tf.dispose([x, logits, feats, again]);
  model.dispose();
});

test('wrong input shapes and bad configs are clear errors', () => {
  const model = new FashionMnistClassifier().initialize(0);
  const x = tf.zeros([2, 32, 32, 1]) as Tensor4D;
  expect(() => model.forward(x)).toThrow(/expected input \[B, 28, 28, 1\].*got \[2, 32, 32, 1\]/);
  x.dispose();
  model.dispose();
  expect(() => parseClassifierConfig({ hidden: 3 }, 'c.json')).toThrow(/c.json: unknown field 'hidden'/);
  expect(() => parseClassifierConfig({ channels: [1, 2] }, 'c.json')).toThrow(/c.json: field 'channels' must be 3 positive integers/);
  expect(() => parseClassifierConfig({ num_classes: 0 }, 'c.json')).toThrow(/field 'num_classes' must be a positive integer/);
});

test('no tensor leak in forward and features', async () => {
  const model = new FashionMnistClassifier().initialize(0);
  const x = input(2);
  await expectNoLeak(() => {
    tf.dispose([model.forward(x), model.features(x)]);
  });
  x.dispose();
  model.dispose();
});

test('save + load gives the same logits; a missing folder names the script to run', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-classifier-'));
  try {
    const model = new FashionMnistClassifier({ hidden_dim: 16 }).initialize(3);
    saveFashionMnistClassifier(model, path.join(dir, 'clf'), { note: 'test' });
    const loaded = loadFashionMnistClassifier(path.join(dir, 'clf'));
    expect(loaded.config.hidden_dim).toBe(16);
    const x = input(2);
    const [a, b] = [model.forward(x), loaded.forward(x)];
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    model.dispose();
    loaded.dispose();
    expect(() => loadFashionMnistClassifier(path.join(dir, 'nothing'))).toThrow(/config.json: not found \(train the classifier with scripts\/train-classifier.ts\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
