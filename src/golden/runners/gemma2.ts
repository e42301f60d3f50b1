/** Golden runner: gemma2 cases. */
import { GoldenRunner, configClass } from '../runner';

export const gemma2Runner: GoldenRunner = {
  id: 'gemma2',
  matches: (c) => /^Gemma2/.test(configClass(c)) || c.config?.model_type === 'gemma2',
  run: async () => {
    throw new Error('gemma2: not implemented yet');
  },
};
