/** Golden runner: inception_fid cases. */
import { GoldenRunner, caseKind } from '../runner';

export const inceptionRunner: GoldenRunner = {
  id: 'inception_fid',
  matches: (c) => /Inception/i.test(caseKind(c)),
  run: async () => {
    throw new Error('inception_fid: not implemented yet');
  },
};
