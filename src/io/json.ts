/**
 * JSON as Python writes it: `json.dumps` emits `NaN`, `Infinity` and `-Infinity` (diffusers scheduler
 * configs contain `-Infinity`), which `JSON.parse` rejects. These tokens are rewritten outside strings.
 */
import * as fs from 'fs';

const SENTINEL = '"__sana_nonfinite__:';

/** Parses JSON that may contain bare NaN / Infinity / -Infinity; errors name the file. */
export function parseJsonLenient(text: string, file = 'JSON'): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      out += ch;
      if (ch === '\\') out += text[++i] ?? '';
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') {
      inString = true;
      out += ch;
      continue;
    }
    const rest = text.slice(i, i + 9);
    const token = rest.startsWith('-Infinity') ? '-Infinity' : rest.startsWith('Infinity') ? 'Infinity' : rest.startsWith('NaN') ? 'NaN' : null;
    if (token) {
      out += `${SENTINEL}${token}"`;
      i += token.length - 1;
      continue;
    }
    out += ch;
  }
  try {
    return JSON.parse(out, (_k, v) => (typeof v === 'string' && v.startsWith(SENTINEL.slice(1)) ? Number(v.slice(SENTINEL.length - 1)) : v));
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

/** Reads and parses a JSON file leniently. */
export function readJsonFile(file: string): any {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseJsonLenient(text, file);
}
