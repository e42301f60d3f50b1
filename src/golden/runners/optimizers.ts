/** Golden runner: optimizer cases. */
import { GoldenRunner, caseKind } from '../runner';

export const optimizersRunner: GoldenRunner = {
  id: 'optimizer',
  matches: (c) => /AdamW|CAME/.test(caseKind(c)) && !c.config,
  run: async () => {
    throw new Error('optimizer: not implemented yet');
  },
};
