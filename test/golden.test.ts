/**
 * Every reference case in ../shared/golden through the same checker as `npm run golden`: parity with
 * the diffusers / transformers implementations is the definition of correct.
 */
import { GOLDEN_DIR, expectGoldenPass, goldenCaseNames, useTestBackend } from './helpers';

beforeAll(useTestBackend);

const cases = goldenCaseNames();

if (cases.length === 0) {
  test.skip(`golden cases (none found at ${GOLDEN_DIR})`, () => {});
} else {
  test.each(cases)('%s', async (name) => {
    await expectGoldenPass(name);
  });
}
