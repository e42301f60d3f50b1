/** Golden runner: fid_math cases. */
import { GoldenRunner, caseKind } from '../runner';

export const fidMathRunner: GoldenRunner = {
  id: 'fid_math',
  matches: (c) => /Frechet/i.test(caseKind(c)),
  run: async () => {
    throw new Error('fid_math: not implemented yet');
  },
};
