/**
 * Parity with the reference SanaTransformer2DModel (diffusers) on the extra cases under
 * test/fixtures/dit, made by scripts/fixtures/make_dit_fixtures.py: attention biases with an affine
 * norm before cross-attention and a learned-sigma output width, cross-attention narrower than the model
 * with other head counts and a rounded-down FFN width, a batch of one without padding on an odd-sized
 * latent, and interpolated sin-cos positions on a latent larger than sample_size (with guidance
 * embedding and qk-norm). Same runner as the golden cases: output, loss and every gradient.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadCase } from '../../../src/golden/case';
import { sanaTransformerRunner } from '../../../src/golden/runners/sanaTransformer';
import { useTestBackend } from '../../helpers';

const FIXTURES = path.resolve(__dirname, '..', '..', 'fixtures', 'dit');

beforeAll(useTestBackend);

test.each(fs.readdirSync(FIXTURES).sort())('extra case %s matches diffusers', async (name) => {
  const c = loadCase(path.join(FIXTURES, name));
  expect(sanaTransformerRunner.matches(c)).toBe(true);
  const results = await sanaTransformerRunner.run(c);
  expect(results.filter((r) => r.tensor.startsWith('grad.')).length).toBeGreaterThan(10);
  expect(results.filter((r) => !r.ok)).toEqual([]);
});
