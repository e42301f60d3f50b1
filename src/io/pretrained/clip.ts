/**
 * Loading a CLIPModel and its tokenizer from a transformers folder (e.g. a download of
 * `openai/clip-vit-large-patch14`): `config.json`, weights as `model.safetensors` (or a sharded index)
 * or, failing that, `pytorch_model.bin` read through the safe `.pth` reader, and `tokenizer.json` (+
 * `tokenizer_config.json`) for the BPE tokenizer.
 */
import * as fs from 'fs';
import * as path from 'path';
import { SafetensorsCheckpoint } from '../safetensors';
import { PthCheckpoint } from '../pth';
import { readJsonFile } from '../json';
import { TensorSource } from '../../nn/module';
import { CLIPConfig, parseCLIPConfig } from '../../models/clip/config';
import { CLIPModel } from '../../models/clip/modeling';
import { CLIPTokenizer } from '../../models/clip/tokenizer';

/** Older transformers checkpoints store the `position_ids` buffers; they are not weights. */
export const CLIP_POSITION_IDS = /(^|\.)position_ids$/;

export function readCLIPConfig(dir: string): CLIPConfig {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new Error(`${dir}: not a CLIP model folder (no config.json)`);
  return parseCLIPConfig(readJsonFile(file), file);
}

function openWeights(dir: string): { source: TensorSource & { close(): void }; name: string } {
  const safetensors = ['model.safetensors', 'model.safetensors.index.json'].find((f) => fs.existsSync(path.join(dir, f)));
  if (safetensors) return { source: SafetensorsCheckpoint.open(path.join(dir, safetensors)), name: path.join(dir, safetensors) };
  const bin = path.join(dir, 'pytorch_model.bin');
  if (fs.existsSync(bin)) return { source: PthCheckpoint.open(bin), name: bin };
  throw new Error(`${dir}: no CLIP weights (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)`);
}

/** Builds a CLIPModel from a transformers folder; loading is strict (all problems in one error). */
export function loadCLIPModel(dir: string): CLIPModel {
  const model = new CLIPModel(readCLIPConfig(dir));
  const { source, name } = openWeights(dir);
  try {
    model.loadStateDict(source, { sourceName: name, ignore: [CLIP_POSITION_IDS] });
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    source.close();
  }
  return model;
}

/** The BPE tokenizer of a transformers CLIP folder (`tokenizer.json` needed). */
export function loadCLIPTokenizer(dir: string): CLIPTokenizer {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new Error(`${dir}: no tokenizer.json (a CLIP folder from transformers has tokenizer.json and tokenizer_config.json)`);
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  const cfg = fs.existsSync(cfgFile) ? (readJsonFile(cfgFile) as Record<string, unknown>) : {};
  return new CLIPTokenizer(readJsonFile(file) as object, cfg);
}
