/** Golden runner: rf_training_target cases. */
import { GoldenRunner, caseKind } from '../runner';

export const rfTargetRunner: GoldenRunner = {
  id: 'rf_training_target',
  matches: (c) => /rectified-flow|flow-matching/i.test(caseKind(c)) && !c.config,
  run: async () => {
    throw new Error('rf_training_target: not implemented yet');
  },
};
