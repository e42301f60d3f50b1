/**
 * Parity with the reference AutoencoderDC (diffusers): the shared golden cases (forward, gradients,
 * tiling) and the extra cases under test/fixtures/dcae made by scripts/fixtures/make_dcae_fixtures.py
 * (pixel shuffle/unshuffle, empty first stage, per-stage norms incl. batch_norm and layer_norm, other
 * activations, shortcuts off, 1 and 4 channels, batches, the small-map attention branch, tiled batches).
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadCase } from '../../../src/golden/case';
import { autoencoderDCRunner } from '../../../src/golden/runners/autoencoderDC';
import { expectGoldenPass, useTestBackend } from '../../helpers';

const FIXTURES = path.resolve(__dirname, '..', '..', 'fixtures', 'dcae');

beforeAll(useTestBackend);

test('dc_ae_tiny: latent, reconstruction, loss and every gradient match diffusers', async () => {
  await expectGoldenPass('dc_ae_tiny');
});

test('dc_ae_tiled: tiled decode and tiled encode match diffusers with enable_tiling', async () => {
  await expectGoldenPass('dc_ae_tiled');
});

test.each(fs.readdirSync(FIXTURES).sort())('extra case %s matches diffusers', async (name) => {
  const c = loadCase(path.join(FIXTURES, name));
  expect(autoencoderDCRunner.matches(c)).toBe(true);
  const results = await autoencoderDCRunner.run(c);
  expect(results.length).toBeGreaterThanOrEqual(2);
  expect(results.filter((r) => !r.ok)).toEqual([]);
});
