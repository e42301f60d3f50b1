/** Backend set-up for training tests that need no golden case (same choice as test/helpers.ts). */
import { initBackend } from '../../src/backend';

export async function useBackend(): Promise<void> {
  await initBackend(process.env.SANA_TEST_BACKEND || undefined);
}
