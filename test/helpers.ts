/** Shared test set-up: backend choice, golden folder location, leak checks. */
import * as path from 'path';
import * as fs from 'fs';
import { initBackend, tf } from '../src/backend';
import { checkCase, formatOutcome } from '../src/golden/check';
import { loadCase } from '../src/golden/case';
import { CheckResult } from '../src/golden/compare';
import { GoldenRunner } from '../src/golden/runner';

/** `../shared/golden` next to the repository. */
export const GOLDEN_DIR = path.resolve(__dirname, '..', '..', 'shared', 'golden');

export function goldenCase(name: string): string {
  return path.join(GOLDEN_DIR, name);
}

export function goldenCaseNames(): string[] {
  if (!fs.existsSync(GOLDEN_DIR)) return [];
  return fs.readdirSync(GOLDEN_DIR).filter((d) => fs.existsSync(path.join(GOLDEN_DIR, d, 'case.json'))).sort();
}

/** Extra reference cases in the golden layout, made by scripts/fixtures/*.py: test/fixtures/<group>/<case>. */
export function fixtureCaseDir(group: string, name: string): string {
  return path.resolve(__dirname, 'fixtures', group, name);
}

export function fixtureCaseNames(group: string): string[] {
  return fs.readdirSync(path.resolve(__dirname, 'fixtures', group)).sort();
}

/** Runs extra reference case `name` of `group` with `runner`, which must claim it; returns its checks. */
export async function runFixtureCase(group: string, name: string, runner: GoldenRunner): Promise<CheckResult[]> {
  const c = loadCase(fixtureCaseDir(group, name));
  expect(runner.matches(c)).toBe(true);
  return runner.run(c);
}

/**
 * Initialises the backend for a test file: the fastest available, or the one named by
 * SANA_TEST_BACKEND (used to run the suite on the pure `cpu` backend).
 */
export async function useTestBackend(): Promise<string> {
  const info = await initBackend(process.env.SANA_TEST_BACKEND || undefined);
  return info.tfName;
}

/** Runs a golden case and fails the test with the checker's line when it does not pass. */
export async function expectGoldenPass(name: string): Promise<void> {
  const outcome = await checkCase(goldenCase(name));
  if (!outcome.ok) {
    const details = outcome.results.filter((r) => !r.ok).map((r) => `${r.tensor}: max_abs ${r.maxAbs} allowed ${r.allowed}${r.note ? ` ${r.note}` : ''}`);
    throw new Error(`${formatOutcome(outcome)}\n${details.join('\n')}\n${outcome.error ?? ''}`);
  }
}

/** Asserts that `fn` leaves no tensor behind after a warm-up call. */
export async function expectNoLeak(fn: () => void | Promise<void>, repeats = 3): Promise<void> {
  await fn();
  // Tensors the engine tracks, and the backend's data buffers: kernels that share or keep data outside
  // the engine (src/backend/kernels) would leak only at the second level.
  const count = () => ({ tensors: tf.memory().numTensors, buffers: tf.engine().backend.numDataIds() });
  const before = count();
  for (let i = 0; i < repeats; i++) await fn();
  expect(count()).toEqual(before);
}
