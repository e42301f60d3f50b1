/**
 * Golden runner: Gemma-2 text encoder cases (`Gemma2Model` forward to `last_hidden_state`).
 *
 * Compares `last_hidden_state` only where `valid_positions` is 1 (padded rows are undefined by
 * construction, see the case's `compare` note), plus every `debug.hidden_states.i` the case gives a
 * tolerance for.
 */
import { tf } from '../../backend';
import { GoldenRunner, configClass } from '../runner';
import { ioTensor } from '../case';
import { CheckResult, Tolerance, compareTensor, toleranceFor } from '../compare';
import { HostTensor, toInt32 } from '../../io/safetensors';
import { loadGemma2Model } from '../../io/pretrained/gemma';
import { parseGemma2Config } from '../../models/text';

/** Values of `t` ([B, S, ...]) at positions where `keep` ([B, S]) is 1, flattened. */
function selectPositions(data: ArrayLike<number>, shape: readonly number[], keep: Int32Array): Float32Array {
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let p = 0; p < keep.length; p++) {
    if (keep[p] !== 1) continue;
    for (let j = 0; j < inner; j++) out.push(data[p * inner + j]);
  }
  return Float32Array.from(out);
}

function compareValid(name: string, got: Float32Array, gotShape: number[], ref: HostTensor, keep: Int32Array | null, tol: Tolerance): CheckResult {
  const label = keep ? `${name}[valid]` : name;
  if (gotShape.length !== ref.shape.length || gotShape.some((d, i) => d !== ref.shape[i])) {
    return { tensor: label, ok: false, maxAbs: Infinity, allowed: 0, note: `shape [${gotShape}] vs reference [${ref.shape}]` };
  }
  if (!keep) return compareTensor(label, got, ref, tol);
  return compareTensor(label, selectPositions(got, gotShape, keep), selectPositions(ref.data as Float32Array, ref.shape, keep), tol);
}

export const gemma2Runner: GoldenRunner = {
  id: 'gemma2',
  matches: (c) => /^Gemma2/.test(configClass(c)) || c.config?.model_type === 'gemma2',
  run: async (c) => {
    const config = parseGemma2Config(c.config, c.file('config.json'));
    const model = loadGemma2Model(c.file('model.safetensors'), { config });
    try {
      const ids = ioTensor(c, 'input_ids');
      const mask = c.io.get('attention_mask') ?? null;
      const valid = c.io.get('valid_positions') ?? mask;
      const keep = valid ? toInt32(valid, 'valid_positions') : null;
      const debugNames = [...c.io.keys()].filter((k) => /^debug\.hidden_states\.\d+$/.test(k) && toleranceFor(c.spec, k));
      const out = tf.tidy(() => {
        const idsT = tf.tensor2d(toInt32(ids, 'input_ids'), ids.shape as [number, number], 'int32');
        const maskT = mask ? tf.tensor2d(toInt32(mask, 'attention_mask'), mask.shape as [number, number], 'int32') : null;
        const r = model.forward(idsT, maskT, { outputHiddenStates: debugNames.length > 0 });
        return { last: r.lastHiddenState, hidden: r.hiddenStates ?? [] };
      });
      const results: CheckResult[] = [];
      const tol = toleranceFor(c.spec, 'last_hidden_state');
      if (!tol) throw new Error(`${c.name}: case.json gives no tolerance for last_hidden_state`);
      results.push(compareValid('last_hidden_state', out.last.dataSync() as Float32Array, out.last.shape, ioTensor(c, 'last_hidden_state'), keep, tol));
      for (const name of debugNames) {
        const i = Number(name.split('.').pop());
        const t = out.hidden[i];
        if (!t) {
          results.push({ tensor: name, ok: false, maxAbs: Infinity, allowed: 0, note: `model has only ${out.hidden.length} hidden states` });
          continue;
        }
        results.push(compareValid(name, t.dataSync() as Float32Array, t.shape, ioTensor(c, name), keep, toleranceFor(c.spec, name)!));
      }
      tf.dispose([out.last, ...out.hidden]);
      return results;
    } finally {
      model.dispose();
    }
  },
};
