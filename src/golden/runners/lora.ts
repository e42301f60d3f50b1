/** Golden runner: lora cases. */
import * as fs from 'fs';
import { GoldenRunner, caseKind } from '../runner';

export const loraRunner: GoldenRunner = {
  id: 'lora',
  matches: (c) => fs.existsSync(c.file('lora.safetensors')) || /\bLoRA\b/.test(caseKind(c)),
  run: async () => {
    throw new Error('lora: not implemented yet');
  },
};
