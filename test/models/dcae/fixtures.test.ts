/**
 * Parity with the reference AutoencoderDC (diffusers) on the extra cases under test/fixtures/dcae, made
 * by scripts/fixtures/make_dcae_fixtures.py: pixel shuffle/unshuffle, an empty first stage, per-stage
 * norms (batch_norm, layer_norm), other activations (relu, gelu, mish), shortcuts off, 1 and 4 image
 * channels, batches, the small-map attention branch, widths that are not multiples of the head dim,
 * and tiled encode/decode of a batch with rectangular tiles. Same runner as the golden cases.
 */
import { autoencoderDCRunner } from '../../../src/golden/runners/autoencoderDC';
import { fixtureCaseNames, runFixtureCase, useTestBackend } from '../../helpers';

beforeAll(useTestBackend);

test.each(fixtureCaseNames('dcae'))('extra case %s matches diffusers', async (name) => {
  const results = await runFixtureCase('dcae', name, autoencoderDCRunner);
  expect(results.length).toBeGreaterThanOrEqual(2);
  expect(results.filter((r) => !r.ok)).toEqual([]);
});
