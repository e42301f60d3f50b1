/**
 * Loading the FID Inception weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a PyTorch
 * checkpoint, read with the safe `.pth` reader) or the same state dict as `.safetensors`. Keys are
 * torchvision Inception3's; the classifier (`fc.*`, unused for FID features) and BatchNorm
 * `num_batches_tracked` counters are skipped, everything else must match exactly.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsCheckpoint } from '../safetensors';
import { PthCheckpoint } from '../pth';
import { TensorSource } from '../../nn/module';
import { FIDInceptionV3 } from '../../models/inception/fidInception';

/** File name of the standard FID weights as pytorch-fid downloads them. */
export const FID_INCEPTION_WEIGHTS = 'pt_inception-2015-12-05-6726825d.pth';

/**
 * Where the weights usually are: pytorch-fid's download location (torch hub's checkpoint cache,
 * `$TORCH_HOME/hub/checkpoints`, default `~/.cache/torch/hub/checkpoints`), then `checkpoints/`.
 */
export function inceptionWeightCandidates(): string[] {
  const torchHome = process.env.TORCH_HOME || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'torch');
  return [path.join(torchHome, 'hub', 'checkpoints', FID_INCEPTION_WEIGHTS), path.join('checkpoints', FID_INCEPTION_WEIGHTS)];
}

/** The first of `inceptionWeightCandidates()` that exists, or null. */
export function findInceptionWeights(): string | null {
  return inceptionWeightCandidates().find((f) => fs.existsSync(f)) ?? null;
}

const IGNORED = [/^fc\./, /\.num_batches_tracked$/];

/** Builds the FID Inception network from a `.pth` / `.safetensors` state dict. */
export function loadFidInception(file: string): FIDInceptionV3 {
  if (!fs.existsSync(file)) {
    throw new Error(`${file}: FID Inception weights not found (pytorch-fid's ${FID_INCEPTION_WEIGHTS}; pass its path)`);
  }
  const source: TensorSource & { close(): void } = file.endsWith('.safetensors') ? SafetensorsCheckpoint.open(file) : PthCheckpoint.open(file);
  const model = new FIDInceptionV3();
  try {
    model.loadStateDict(source, { sourceName: file, ignore: IGNORED });
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    source.close();
  }
  return model;
}
