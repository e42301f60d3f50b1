/**
 * Parity with the reference AutoencoderDC (diffusers) on the extra cases under test/fixtures/dcae, made
 * by scripts/fixtures/make_dcae_fixtures.py: pixel shuffle/unshuffle, an empty first stage, per-stage
 * norms (batch_norm, layer_norm), other activations (relu, gelu, mish), shortcuts off, 1 and 4 image
 * channels, batches, the small-map attention branch, widths that are not multiples of the head dim,
 * and tiled encode/decode of a batch with rectangular tiles. Same runner as the golden cases.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadCase } from '../../../src/golden/case';
import { autoencoderDCRunner } from '../../../src/golden/runners/autoencoderDC';
import { useTestBackend } from '../../helpers';

const FIXTURES = path.resolve(__dirname, '..', '..', 'fixtures', 'dcae');

beforeAll(useTestBackend);

test.each(fs.readdirSync(FIXTURES).sort())('extra case %s matches diffusers', async (name) => {
  const c = loadCase(path.join(FIXTURES, name));
  expect(autoencoderDCRunner.matches(c)).toBe(true);
  const results = await autoencoderDCRunner.run(c);
  expect(results.length).toBeGreaterThanOrEqual(2);
  expect(results.filter((r) => !r.ok)).toEqual([]);
});
