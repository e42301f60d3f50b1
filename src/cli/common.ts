/** Options every command shares, and the start-up line that names the backend. */
import { Command, Option } from 'commander';
import { BACKEND_NAMES, describeBackend, initBackend } from '../backend';

/** Adds `--backend` to a command. */
export function withBackendOption(cmd: Command): Command {
  return cmd.addOption(new Option('--backend <name>', 'tfjs backend (default: fastest available)').choices([...BACKEND_NAMES, 'node', 'gpu']));
}

/** Initialises the backend (the option wins over a config's `backend:`) and prints which one runs. */
export async function startBackend(requested?: string): Promise<void> {
  const info = await initBackend(requested);
  console.log(describeBackend(info));
}

/** Collects repeated `--set a.b=c` options. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Commander argument parser for counts (`--steps`, `--stop-at`, ...). */
export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${v}"`);
  return n;
}
