/**
 * Golden runner for `fid_math` cases: for each pair P in `case.json` `pairs`, the statistics of
 * `P.features1` / `P.features2` and their Fréchet distance against pytorch-fid's numbers.
 */
import { GoldenRunner, caseKind } from '../runner';
import { ioTensor } from '../case';
import { CheckResult, Tolerance, check } from '../compare';
import { featureStatistics, frechetDistance } from '../../eval/fid';

const FALLBACK: Tolerance = { metric: 'allclose', atol: 1e-12, rtol: 1e-10 };

export const fidMathRunner: GoldenRunner = {
  id: 'fid_math',
  matches: (c) => /Frechet/i.test(caseKind(c)),
  run: async (c) => {
    const pairs = Object.keys((c.spec.pairs ?? {}) as Record<string, unknown>);
    if (pairs.length === 0) throw new Error(`${c.name}: case.json lists no pairs`);
    const results: CheckResult[] = [];
    for (const p of pairs) {
      const stats = [1, 2].map((i) => {
        const f = ioTensor(c, `${p}.features${i}`);
        if (f.shape.length !== 2) throw new Error(`${c.name}: ${p}.features${i} must be (N, d), got [${f.shape}]`);
        return featureStatistics(f.data as ArrayLike<number>, f.shape[0], f.shape[1]);
      });
      const r = frechetDistance(stats[0], stats[1]);
      const expect = (name: string, got: ArrayLike<number>) => {
        const key = `${p}.${name}`;
        if (c.io.has(key)) results.push(check(c.spec, key, got, ioTensor(c, key), FALLBACK));
      };
      expect('mu1', stats[0].mu);
      expect('mu2', stats[1].mu);
      expect('sigma1', stats[0].sigma);
      expect('sigma2', stats[1].sigma);
      expect('fid', [r.fid]);
      expect('trace_sqrt_sigma1_sigma2', [r.traceSqrt]);
    }
    return results;
  },
};
