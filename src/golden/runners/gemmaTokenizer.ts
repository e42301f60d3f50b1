/** Golden runner: gemma_tokenizer cases. */
import { GoldenRunner, caseKind } from '../runner';

export const gemmaTokenizerRunner: GoldenRunner = {
  id: 'gemma_tokenizer',
  matches: (c) => !c.config && /tokeniz/i.test(caseKind(c)),
  run: async () => {
    throw new Error('gemma_tokenizer: not implemented yet');
  },
};
