/**
 * Reading YAML configs and applying command-line overrides (`--set optimizer.lr=2e-5`). The document is
 * validated only after every override is applied, so an override is checked exactly like the file.
 */
import * as fs from 'fs';
import * as YAML from 'yaml';
import { ConfigError, Schema, validate } from './schema';

/** Reads a YAML (or JSON, a subset of YAML) file into a plain value; errors name the file and line. */
export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [{ path: '', expected: 'a readable YAML file', got: code === 'ENOENT' ? 'no such file' : String(code ?? (e as Error).message) }]);
  }
  return parseYaml(text, file);
}

/** Parses YAML text; syntax errors and duplicate keys become a ConfigError with the line. */
export function parseYaml(text: string, source: string): unknown {
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) {
    const issues = doc.errors.map((e) => ({ path: `line ${e.linePos?.[0]?.line ?? '?'}`, expected: 'valid YAML', got: e.message.split('\n')[0] }));
    throw new ConfigError(source, issues);
  }
  return doc.toJS({ maxAliasCount: 100 }) ?? {};
}

/** One `--set` override: a path (`a.b[2].c` or `a.b.2.c`) and its YAML-parsed value. */
export interface Override {
  text: string;
  path: Array<string | number>;
  value: unknown;
}

/** Parses `a.b=c`; the value is read as YAML (`1e-4` a number, `[1, 2]` a list, `~` null, else a string). */
export function parseOverride(text: string): Override {
  const eq = text.indexOf('=');
  const bad = (why: string) => new ConfigError('--set', [{ path: text, expected: 'key.path=value', got: why }]);
  if (eq <= 0) throw bad('no "=" after a key');
  const keyText = text.slice(0, eq).trim();
  const path: Array<string | number> = [];
  for (const part of keyText.split('.')) {
    const m = part.match(/^([A-Za-z_][\w-]*)?((?:\[\d+\])*)$/);
    if (!m || (!m[1] && !m[2])) {
      if (/^\d+$/.test(part)) {
        path.push(Number(part));
        continue;
      }
      throw bad(`"${part}" is not a key`);
    }
    if (m[1]) path.push(m[1]);
    for (const idx of m[2].matchAll(/\[(\d+)\]/g)) path.push(Number(idx[1]));
  }
  const raw = text.slice(eq + 1);
  let value: unknown;
  try {
    value = raw.trim() === '' ? '' : YAML.parse(raw);
  } catch {
    value = raw;
  }
  return { text, path, value };
}

/** Dotted rendering of an override path (`validation.prompts[0]`). */
export function pathString(path: Array<string | number>): string {
  return path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${p}` : p), '');
}

/** Applies overrides to a copy of `doc`, creating intermediate mappings as needed. */
export function applyOverrides(doc: unknown, overrides: Override[]): unknown {
  const root = structuredClone(doc ?? {}) as Record<string | number, unknown>;
  for (const o of overrides) {
    let node: any = root;
    o.path.forEach((key, i) => {
      const last = i === o.path.length - 1;
      if (last) {
        if (typeof key === 'number' && !Array.isArray(node)) throw new ConfigError('--set', [{ path: pathString(o.path), expected: 'a list to index', got: 'a mapping' }]);
        node[key] = o.value;
        return;
      }
      if (node[key] === undefined || node[key] === null) node[key] = typeof o.path[i + 1] === 'number' ? [] : {};
      if (typeof node[key] !== 'object') {
        throw new ConfigError('--set', [{ path: pathString(o.path.slice(0, i + 1)), expected: 'a mapping or list to set a field in', got: JSON.stringify(node[key]) }]);
      }
      node = node[key];
    });
  }
  return root;
}

/**
 * Reads `file`, applies `sets` (`a.b=c` strings) and validates with `schema`. Issues at a path that an
 * override set are marked `(from --set)`.
 */
export function loadConfig<T>(schema: Schema<T>, file: string, sets: string[] = []): { config: T; document: unknown } {
  const overrides = sets.map(parseOverride);
  const document = applyOverrides(readYamlFile(file), overrides);
  try {
    return { config: validate(schema, document, file), document };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const setPaths = overrides.map((o) => pathString(o.path));
    const issues = e.issues.map((i) => (setPaths.some((p) => i.path === p || i.path.startsWith(`${p}.`) || i.path.startsWith(`${p}[`)) ? { ...i, path: `${i.path} (from --set)` } : i));
    throw new ConfigError(file, issues);
  }
}
