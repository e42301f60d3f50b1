/**
 * Golden runner: rf_training_target cases (rectified-flow noising, velocity target, timestep shift and
 * the discrete training table of FlowMatchEulerDiscreteScheduler). Every tensor that is not an input
 * is recomputed with `src/training/flow.ts`; shifts are read from the tensor names (`_3`, `_shift1`).
 */
import { tf } from '../../backend';
import { HostTensor, toFloat32, toInt32 } from '../../io/safetensors';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, check } from '../compare';
import { GoldenRunner, caseKind } from '../runner';
import { flowMatchTrainingTable, noisyInput, shiftSigmas, sigmasToTimesteps, velocityTarget } from '../../training/flow';

const INPUTS = new Set(['noise', 'x0', 'sigmas', 'shift_grid', 'train_indices']);
const FALLBACK = { metric: 'allclose' as const, atol: 1e-6, rtol: 1e-6 };

/** x0/noise are NCHW here, but noising is elementwise per sample, so the layout does not matter. */
function noised(c: GoldenCase, sigmas: Float32Array): Float32Array {
  const x0 = ioTensor(c, 'x0');
  const noise = ioTensor(c, 'noise');
  return tf.tidy(() => {
    const x = tf.tensor(toFloat32(x0, 'x0'), x0.shape, 'float32');
    const n = tf.tensor(toFloat32(noise, 'noise'), noise.shape, 'float32');
    return noisyInput(x, n, sigmas).dataSync() as Float32Array;
  });
}

function tableAt(table: Float32Array, indices: Int32Array): Float32Array {
  return Float32Array.from(indices, (i) => table[i]);
}

function recompute(c: GoldenCase, name: string): Float32Array | null {
  const N = 1000;
  let m: RegExpMatchArray | null;
  if ((m = name.match(/^shifted_(sigmas|timesteps)_([\d.]+)$/))) {
    const grid = toFloat32(ioTensor(c, 'shift_grid'), 'shift_grid');
    const shifted = shiftSigmas(grid, Number(m[2]));
    return m[1] === 'sigmas' ? shifted : sigmasToTimesteps(shifted, N);
  }
  if ((m = name.match(/^train_table_(sigmas|timesteps)_([\d.]+)$/))) {
    const table = flowMatchTrainingTable(N, Number(m[2]));
    return m[1] === 'sigmas' ? table.sigmas : table.timesteps;
  }
  if ((m = name.match(/^(train_sigmas|train_timesteps|x_t_scale_noise)_shift([\d.]+)$/))) {
    const table = flowMatchTrainingTable(N, Number(m[2]));
    const idx = toInt32(ioTensor(c, 'train_indices'), 'train_indices');
    if (m[1] === 'train_sigmas') return tableAt(table.sigmas, idx);
    if (m[1] === 'train_timesteps') return tableAt(table.timesteps, idx);
    return noised(c, tableAt(table.sigmas, idx));
  }
  if (name === 'x_t') return noised(c, toFloat32(ioTensor(c, 'sigmas'), 'sigmas'));
  if (name === 'target') {
    const x0 = ioTensor(c, 'x0');
    const noise = ioTensor(c, 'noise');
    return tf.tidy(() => {
      const x = tf.tensor(toFloat32(x0, 'x0'), x0.shape, 'float32');
      const n = tf.tensor(toFloat32(noise, 'noise'), noise.shape, 'float32');
      return velocityTarget(x, n).dataSync() as Float32Array;
    });
  }
  return null;
}

export const rfTargetRunner: GoldenRunner = {
  id: 'rf_training_target',
  matches: (c) => /rectified-flow|flow-matching/i.test(caseKind(c)) && !c.config,
  run: async (c) => {
    const results: CheckResult[] = [];
    for (const [name, ref] of c.io as Map<string, HostTensor>) {
      if (INPUTS.has(name) || name.startsWith('debug.')) continue;
      const got = recompute(c, name);
      if (!got) {
        results.push({ tensor: name, ok: false, maxAbs: Infinity, allowed: 0, note: 'no rule to recompute this tensor' });
        continue;
      }
      results.push(check(c.spec, name, got, ref, FALLBACK, ref.shape));
    }
    return results;
  },
};
