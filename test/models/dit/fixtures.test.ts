/**
 * Parity with the reference SanaTransformer2DModel (diffusers) on the extra cases under
 * test/fixtures/dit, made by scripts/fixtures/make_dit_fixtures.py: attention biases with an affine
 * norm before cross-attention and a learned-sigma output width, cross-attention narrower than the model
 * with other head counts and a rounded-down FFN width, a batch of one without padding on an odd-sized
 * latent, and interpolated sin-cos positions on a latent larger than sample_size (with guidance
 * embedding and qk-norm). Same runner as the golden cases: output, loss and every gradient.
 */
import { sanaTransformerRunner } from '../../../src/golden/runners/sanaTransformer';
import { fixtureCaseNames, runFixtureCase, useTestBackend } from '../../helpers';

beforeAll(useTestBackend);

test.each(fixtureCaseNames('dit'))('extra case %s matches diffusers', async (name) => {
  const results = await runFixtureCase('dit', name, sanaTransformerRunner);
  expect(results.filter((r) => r.tensor.startsWith('grad.')).length).toBeGreaterThan(10);
  expect(results.filter((r) => !r.ok)).toEqual([]);
});
