/** Golden runner: autoencoder_dc cases. */
import { GoldenRunner, configClass } from '../runner';

export const autoencoderDCRunner: GoldenRunner = {
  id: 'autoencoder_dc',
  matches: (c) => configClass(c) === 'AutoencoderDC',
  run: async () => {
    throw new Error('autoencoder_dc: not implemented yet');
  },
};
