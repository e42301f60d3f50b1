/** Golden runner: sana_pipeline cases. */
import * as fs from 'fs';
import { GoldenRunner } from '../runner';

export const pipelineRunner: GoldenRunner = {
  id: 'sana_pipeline',
  matches: (c) => fs.existsSync(c.file('model_index.json')),
  run: async () => {
    throw new Error('sana_pipeline: not implemented yet');
  },
};
