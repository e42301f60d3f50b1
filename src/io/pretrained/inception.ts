/**
 * Loading the FID Inception weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a PyTorch
 * checkpoint, read with the safe `.pth` reader) or the same state dict as `.safetensors`. Keys are
 * torchvision Inception3's; the classifier (`fc.*`, unused for FID features) and BatchNorm
 * `num_batches_tracked` counters are skipped, everything else must match exactly.
 */
import * as fs from 'fs';
import { SafetensorsCheckpoint } from '../safetensors';
import { PthCheckpoint } from '../pth';
import { TensorSource } from '../../nn/module';
import { FIDInceptionV3 } from '../../models/inception/fidInception';

/** File name of the standard FID weights as pytorch-fid downloads them. */
export const FID_INCEPTION_WEIGHTS = 'pt_inception-2015-12-05-6726825d.pth';

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
