/**
 * Loading and saving the Fashion-MNIST judge (`FashionMnistClassifier`): a folder with `config.json`
 * and `model.safetensors` (PyTorch layouts, keys as the module tree names them). Loading is strict;
 * saving is atomic (the folder appears complete or not at all).
 */
import * as fs from 'fs';
import * as path from 'path';
import { TensorToWrite, writeSafetensors } from '../safetensors';
import { readJsonFile } from '../json';
import { writeDirAtomic } from '../atomic';
import { FashionMnistClassifier, parseClassifierConfig } from '../../models/classifier/fashionMnist';
import { loadWeightsInto } from './weights';

/** Where `scripts/train-classifier.ts` writes the committed judge, relative to the repository root. */
export const DEFAULT_CLASSIFIER_DIR = 'data/fashion-mnist-classifier';

/** Builds the classifier from `<dir>/config.json` + `<dir>/model.safetensors`. Free with `dispose()`. */
export function loadFashionMnistClassifier(dir: string = DEFAULT_CLASSIFIER_DIR): FashionMnistClassifier {
  const configFile = path.join(dir, 'config.json');
  const weights = path.join(dir, 'model.safetensors');
  for (const f of [configFile, weights]) {
    if (!fs.existsSync(f)) throw new Error(`${f}: not found (train the classifier with scripts/train-classifier.ts)`);
  }
  const model = new FashionMnistClassifier(parseClassifierConfig(readJsonFile(configFile), configFile));
  return loadWeightsInto(model, weights);
}

/** Writes `config.json` (+ `extra` metadata fields prefixed by `_`) and `model.safetensors` atomically. */
export function saveFashionMnistClassifier(model: FashionMnistClassifier, dir: string, extra: Record<string, unknown> = {}): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [key, t] of model.stateDict()) tensors.set(key, { dtype: 'F32', shape: t.shape, data: t.data });
  const config: Record<string, unknown> = { _class_name: 'FashionMnistClassifier', ...model.config };
  for (const [k, v] of Object.entries(extra)) config[`_${k}`] = v;
  writeDirAtomic(dir, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    writeSafetensors(path.join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
  });
}
