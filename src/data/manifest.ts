/**
 * Reading a dataset folder's list of images and captions (no pixels are decoded here).
 *
 * Two layouts (documented in data/README.md):
 * - `manifest.jsonl`: one JSON object per line with `id`, `image`, `captions` (or `caption`), optional
 *   `clip_scores` and `meta`. Caption types and per-type CLIP scores mirror how NVlabs/Sana keeps them
 *   (`diffusion/data/datasets/sana_data.py`: a caption dict per image plus a `*_clip_score.json` dict keyed
 *   by caption type); here both live on the image's own line.
 * - a plain folder: `name.png` (or .jpg/.jpeg/.webp) next to `name.txt`, whose first line is the caption,
 *   as SANA's `SanaImgDataset` reads it.
 *
 * Images may be files, or entries of an image pack: a safetensors file with one `images` tensor
 * (uint8, [N, H, W, C]), used for small fixed-size images such as Fashion-MNIST.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Caption } from './captionChoice';

export const MANIFEST_FILE = 'manifest.jsonl';
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;
/** The caption type of `caption: "..."` lines and of plain-folder `.txt` files (SANA's `default_prompt`). */
export const DEFAULT_CAPTION_KEY = 'prompt';

export type ImageRef =
  | { kind: 'file'; path: string }
  | { kind: 'pack'; path: string; index: number };

export interface DatasetEntry {
  /** Unique within the dataset; names the image in batches, warnings and caches. */
  id: string;
  image: ImageRef;
  /** In manifest order; the first one is used when no caption has a score. */
  captions: Caption[];
  /** Free-form data carried along (e.g. `{label: 3}`), never interpreted by the loader. */
  meta?: Record<string, unknown>;
  /** `manifest.jsonl:12` or the caption file, for messages. */
  origin: string;
}

/** An image left out of the dataset, with the reason. */
export interface SkippedImage {
  id: string;
  file: string;
  reason: string;
}

export interface ReadEntriesOptions {
  /** Plain folders: an image without a `.txt` is an error (default) or a counted skip. */
  missingCaption?: 'error' | 'skip';
}

export interface EntryList {
  entries: DatasetEntry[];
  skipped: SkippedImage[];
  /** `manifest` or `folder`. */
  layout: 'manifest' | 'folder';
}

export class DatasetFormatError extends Error {
  constructor(readonly where: string, problem: string) {
    super(`${where}: ${problem}`);
    this.name = 'DatasetFormatError';
  }
}

const MANIFEST_FIELDS = ['id', 'image', 'caption', 'captions', 'clip_scores', 'meta'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** JS objects list integer-like keys first whatever their order in the file, which would reorder captions. */
function isIntegerLike(key: string): boolean {
  return /^(0|[1-9]\d*)$/.test(key);
}

function parseImageRef(v: unknown, root: string, where: string): ImageRef {
  if (typeof v === 'string' && v.length > 0) return { kind: 'file', path: path.resolve(root, v) };
  if (isPlainObject(v)) {
    const extra = Object.keys(v).filter((k) => k !== 'pack' && k !== 'index');
    if (extra.length) throw new DatasetFormatError(where, `"image" has unknown field(s) ${extra.join(', ')}; expected {"pack": FILE, "index": N}`);
    if (typeof v.pack !== 'string' || !v.pack) throw new DatasetFormatError(where, '"image.pack" must be the path of a .safetensors image pack');
    if (!Number.isInteger(v.index) || (v.index as number) < 0) throw new DatasetFormatError(where, `"image.index" must be a non-negative integer, got ${JSON.stringify(v.index)}`);
    return { kind: 'pack', path: path.resolve(root, v.pack), index: v.index as number };
  }
  throw new DatasetFormatError(where, `"image" must be a file path or {"pack": FILE, "index": N}, got ${JSON.stringify(v)}`);
}

function parseCaptions(obj: Record<string, unknown>, where: string): Caption[] {
  if (obj.caption !== undefined && obj.captions !== undefined) throw new DatasetFormatError(where, 'give either "caption" or "captions", not both');
  let captions: Caption[];
  if (obj.caption !== undefined) {
    if (typeof obj.caption !== 'string') throw new DatasetFormatError(where, `"caption" must be a string, got ${JSON.stringify(obj.caption)}`);
    captions = [{ key: DEFAULT_CAPTION_KEY, text: obj.caption }];
  } else if (isPlainObject(obj.captions)) {
    captions = [];
    for (const [key, text] of Object.entries(obj.captions)) {
      if (isIntegerLike(key)) throw new DatasetFormatError(where, `caption type "${key}" is a number; use a name such as "prompt" or "short" (numeric keys lose their order in JSON objects)`);
      if (typeof text !== 'string') throw new DatasetFormatError(where, `"captions.${key}" must be a string, got ${JSON.stringify(text)}`);
      captions.push({ key, text });
    }
    if (captions.length === 0) throw new DatasetFormatError(where, '"captions" is empty');
  } else {
    throw new DatasetFormatError(where, 'missing captions: expected "captions": {"prompt": "...", ...} or "caption": "..."');
  }

  if (obj.clip_scores !== undefined) {
    if (!isPlainObject(obj.clip_scores)) throw new DatasetFormatError(where, '"clip_scores" must be an object of caption type -> number');
    for (const [key, score] of Object.entries(obj.clip_scores)) {
      const c = captions.find((x) => x.key === key);
      if (!c) throw new DatasetFormatError(where, `"clip_scores.${key}" names no caption (captions: ${captions.map((x) => x.key).join(', ')})`);
      if (typeof score !== 'number' || !Number.isFinite(score)) throw new DatasetFormatError(where, `"clip_scores.${key}" must be a finite number, got ${JSON.stringify(score)}`);
      c.clipScore = score;
    }
  }
  return captions;
}

/** Parses one manifest line (already JSON-decoded). `root` resolves relative image paths. */
export function parseManifestEntry(obj: unknown, root: string, where: string): DatasetEntry {
  if (!isPlainObject(obj)) throw new DatasetFormatError(where, 'each line must be a JSON object');
  const unknown = Object.keys(obj).filter((k) => !MANIFEST_FIELDS.includes(k));
  if (unknown.length) throw new DatasetFormatError(where, `unknown field(s) ${unknown.join(', ')}; allowed: ${MANIFEST_FIELDS.join(', ')}`);
  if (obj.image === undefined) throw new DatasetFormatError(where, 'missing "image"');
  const image = parseImageRef(obj.image, root, where);
  let id: string;
  if (obj.id === undefined) {
    if (image.kind === 'pack') throw new DatasetFormatError(where, 'pack images need an "id"');
    id = path.relative(root, image.path).split(path.sep).join('/').replace(/\.[^./]+$/, '');
  } else if (typeof obj.id === 'string' && obj.id.length > 0) {
    id = obj.id;
  } else {
    throw new DatasetFormatError(where, `"id" must be a non-empty string, got ${JSON.stringify(obj.id)}`);
  }
  if (obj.meta !== undefined && !isPlainObject(obj.meta)) throw new DatasetFormatError(where, '"meta" must be an object');
  const entry: DatasetEntry = { id, image, captions: parseCaptions(obj, where), origin: where };
  if (obj.meta !== undefined) entry.meta = obj.meta as Record<string, unknown>;
  return entry;
}

/** Reads `manifest.jsonl` (blank lines ignored). Every malformed line is an error naming file:line. */
export function readManifest(file: string): DatasetEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new DatasetFormatError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const root = path.dirname(file);
  const entries: DatasetEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const where = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new DatasetFormatError(where, `invalid JSON (${(e as Error).message})`);
    }
    entries.push(parseManifestEntry(obj, root, where));
  }
  return entries;
}

/** Image files below `dir` (extensions of IMAGE_EXTENSIONS, hidden entries skipped), recursively, in sorted order. */
export function listImageFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (ent.name.startsWith('.')) continue;
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if ((IMAGE_EXTENSIONS as readonly string[]).includes(path.extname(ent.name).toLowerCase())) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Scans a plain folder of `name.png` + `name.txt` pairs, recursively, in sorted order. */
export function scanImageFolder(dir: string, options: ReadEntriesOptions = {}): { entries: DatasetEntry[]; skipped: SkippedImage[] } {
  const entries: DatasetEntry[] = [];
  const skipped: SkippedImage[] = [];
  for (const file of listImageFiles(dir)) {
    const id = path.relative(dir, file).split(path.sep).join('/').replace(/\.[^./]+$/, '');
    const txt = file.replace(/\.[^./]+$/, '.txt');
    if (!fs.existsSync(txt)) {
      if (options.missingCaption === 'skip') {
        skipped.push({ id, file, reason: `no caption file ${path.basename(txt)}` });
        continue;
      }
      throw new DatasetFormatError(file, `no caption file ${txt} (write one, list the image in ${MANIFEST_FILE}, or set missing_caption: skip)`);
    }
    // SANA reads the first line of the caption file.
    const first = fs.readFileSync(txt, 'utf8').split('\n')[0].trim();
    entries.push({ id, image: { kind: 'file', path: file }, captions: [{ key: DEFAULT_CAPTION_KEY, text: first }], origin: txt });
  }
  return { entries, skipped };
}

/**
 * The entries of a dataset folder: `manifest.jsonl` when present, else the plain image + .txt layout.
 * Duplicate ids are an error naming both places.
 */
export function readDatasetEntries(dir: string, options: ReadEntriesOptions = {}): EntryList {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new DatasetFormatError(dir, 'dataset folder does not exist');
  const manifest = path.join(dir, MANIFEST_FILE);
  const layout = fs.existsSync(manifest) ? 'manifest' : 'folder';
  const { entries, skipped } = layout === 'manifest' ? { entries: readManifest(manifest), skipped: [] } : scanImageFolder(dir, options);
  const seen = new Map<string, string>();
  for (const e of entries) {
    const prev = seen.get(e.id);
    if (prev !== undefined) throw new DatasetFormatError(e.origin, `duplicate image id "${e.id}" (also at ${prev})`);
    seen.set(e.id, e.origin);
  }
  if (entries.length === 0 && skipped.length === 0) {
    throw new DatasetFormatError(dir, `no images found (expected ${MANIFEST_FILE} or image files with ${IMAGE_EXTENSIONS.join('/')} extensions)`);
  }
  return { entries, skipped, layout };
}
