/** Golden runner: sana_transformer cases. */
import * as fs from 'fs';
import { GoldenRunner, configClass } from '../runner';

export const sanaTransformerRunner: GoldenRunner = {
  id: 'sana_transformer',
  matches: (c) => configClass(c) === 'SanaTransformer2DModel' && !fs.existsSync(c.file('lora.safetensors')),
  run: async () => {
    throw new Error('sana_transformer: not implemented yet');
  },
};
