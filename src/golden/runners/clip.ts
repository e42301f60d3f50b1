/** Golden runner: clip_score cases. */
import { GoldenRunner, configClass } from '../runner';

export const clipRunner: GoldenRunner = {
  id: 'clip_score',
  matches: (c) => configClass(c) === 'CLIPModel' || c.config?.model_type === 'clip',
  run: async () => {
    throw new Error('clip_score: not implemented yet');
  },
};
