/** Parity with the reference AutoencoderDC (diffusers) on the shared golden cases: forward, gradients, tiling. */
import { expectGoldenPass, useTestBackend } from '../../helpers';

beforeAll(useTestBackend);

test('dc_ae_tiny: latent, reconstruction, loss and every gradient match diffusers', async () => {
  await expectGoldenPass('dc_ae_tiny');
});

test('dc_ae_tiled: tiled decode and tiled encode match diffusers with enable_tiling', async () => {
  await expectGoldenPass('dc_ae_tiled');
});
