/**
 * A golden case folder (see `../shared/golden/README.md`): `case.json` (the call, tolerances and
 * conventions), optional `config.json` / `scheduler_config.json`, `model.safetensors` (reference
 * weights, PyTorch layouts) and `io.safetensors` (inputs, expected outputs, gradients).
 */
import * as fs from 'fs';
import * as path from 'path';
import { HostTensor, readSafetensors } from '../io/safetensors';
import { parseJsonLenient } from '../io/json';

export interface GoldenCase {
  dir: string;
  name: string;
  /** Parsed `case.json` (empty object when absent). */
  spec: Record<string, any>;
  /** Parsed `config.json` or `scheduler_config.json`, if any. */
  config: Record<string, any> | null;
  /** Tensors of `io.safetensors` (empty when absent). */
  io: Map<string, HostTensor>;
  /** Absolute path of a file in the case folder. */
  file(name: string): string;
}

export function loadCase(dir: string): GoldenCase {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) throw new Error(`${dir}: not a case folder`);
  const read = (f: string) => (fs.existsSync(path.join(abs, f)) ? parseJsonLenient(fs.readFileSync(path.join(abs, f), 'utf8'), path.join(abs, f)) : null);
  const spec = (read('case.json') ?? {}) as Record<string, any>;
  const config = (read('config.json') ?? read('scheduler_config.json')) as Record<string, any> | null;
  const ioFile = path.join(abs, 'io.safetensors');
  const io = fs.existsSync(ioFile) ? readSafetensors(ioFile).tensors : new Map<string, HostTensor>();
  return {
    dir: abs,
    name: (spec.name as string) ?? path.basename(abs),
    spec,
    config,
    io,
    file: (f) => path.join(abs, f),
  };
}

/** An io tensor that must exist. */
export function ioTensor(c: GoldenCase, key: string): HostTensor {
  const t = c.io.get(key);
  if (!t) throw new Error(`${c.name}: io.safetensors has no tensor "${key}"`);
  return t;
}
