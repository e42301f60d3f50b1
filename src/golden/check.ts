/**
 * Runs one golden case folder through the runner that knows its kind.
 */
import { loadCase } from './case';
import { CheckResult } from './compare';
import { RUNNERS } from './registry';

export interface CaseOutcome {
  dir: string;
  name: string;
  /** Runner id, or null when no runner knows the case. */
  runner: string | null;
  results: CheckResult[];
  /** Set when the case could not be run (unknown kind, an exception). */
  error?: string;
  ok: boolean;
}

export async function checkCase(dir: string): Promise<CaseOutcome> {
  let c;
  try {
    c = loadCase(dir);
  } catch (e) {
    return { dir, name: dir, runner: null, results: [], error: (e as Error).message, ok: false };
  }
  const runner = RUNNERS.find((r) => r.matches(c));
  if (!runner) {
    const kind = c.spec.kind ?? c.config?._class_name ?? 'no case.json kind';
    return { dir, name: c.name, runner: null, results: [], error: `unknown case kind: ${kind}`, ok: false };
  }
  try {
    const results = await runner.run(c);
    if (results.length === 0) return { dir, name: c.name, runner: runner.id, results, error: 'runner compared no tensors', ok: false };
    return { dir, name: c.name, runner: runner.id, results, ok: results.every((r) => r.ok) };
  } catch (e) {
    return { dir, name: c.name, runner: runner.id, results: [], error: (e as Error).stack ?? String(e), ok: false };
  }
}

/** One line per case: `PASS name` or `FAIL name tensor max_abs allowed`. */
export function formatOutcome(o: CaseOutcome): string {
  if (o.ok) return `PASS ${o.name}`;
  if (o.error) return `FAIL ${o.name} ${o.error.split('\n')[0]}`;
  const bad = o.results.filter((r) => !r.ok);
  const w = bad[0];
  const more = bad.length > 1 ? ` (+${bad.length - 1} more: ${bad.slice(1, 6).map((r) => r.tensor).join(', ')}${bad.length > 6 ? ', ...' : ''})` : '';
  return `FAIL ${o.name} ${w.tensor} ${w.maxAbs.toExponential(3)} ${w.allowed.toExponential(3)}${w.note ? ` [${w.note}]` : ''}${more}`;
}
