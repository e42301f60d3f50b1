/**
 * The image sets an evaluation reads: a folder of generated images (with the JSON sidecars `sana sample`
 * writes next to each PNG), a plain folder of reference images, or one of our dataset folders
 * (`manifest.jsonl`, possibly with an image pack, as data/README.md describes).
 *
 * Images are decoded to 8-bit RGB at their own size, as pytorch-fid does (`Image.open(f).convert('RGB')`);
 * each feature extractor resizes from there. A set also has a fingerprint (every file's relative path,
 * size and mtime) that keys the statistics cache, so an edited, added or removed image invalidates it.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { readJsonFile } from '../io/json';
import { IMAGE_EXTENSIONS, MANIFEST_FILE, listImageFiles, readManifest } from '../data/manifest';
import { ImagePacks } from '../data/images';
import type { ImageRef } from '../data/manifest';
import { ImageU8 } from './imageResize';

/** One image of a set and what is known about it. */
export interface EvalImage {
  /** Relative path without extension (folders) or the manifest id. */
  id: string;
  ref: ImageRef;
  /** The prompt it was generated from (sidecar `prompt`, a `.txt` caption, or the manifest caption). */
  prompt: string | null;
  /** A class index recorded with the image (`label` in a sidecar or in the manifest's `meta`). */
  label: number | null;
  /** The sidecar's other fields (seed, steps, ...), carried into nothing but kept for callers. */
  sidecar: Record<string, unknown> | null;
}

export interface ImageSet {
  /** The folder it was read from. */
  root: string;
  layout: 'folder' | 'manifest';
  images: EvalImage[];
  /** One line per file that decides the pixels: `relative path|size|mtime`. */
  fingerprint: string[];
}

function fileLine(root: string, file: string): string {
  const st = fs.statSync(file);
  return `${path.relative(root, file).split(path.sep).join('/')}|${st.size}|${Math.round(st.mtimeMs)}`;
}


function optionalLabel(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

/**
 * The sidecar of `image` (`name.json` next to `name.png`); absent fields are null. A sidecar that is
 * not a JSON object is an error naming it (a silently ignored prompt would skew the CLIP score).
 */
function readSidecar(image: string): { prompt: string | null; label: number | null; fields: Record<string, unknown> | null; file: string | null } {
  const stem = image.replace(/\.[^./]+$/, '');
  const json = `${stem}.json`;
  if (fs.existsSync(json)) {
    const obj = readJsonFile(json);
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error(`${json}: an image sidecar must be a JSON object`);
    const fields = obj as Record<string, unknown>;
    const prompt = typeof fields.prompt === 'string' ? fields.prompt : null;
    return { prompt, label: optionalLabel(fields.label), fields, file: json };
  }
  // A dataset-style caption file, whose first line is the caption (SANA's convention).
  const txt = `${stem}.txt`;
  if (fs.existsSync(txt)) return { prompt: fs.readFileSync(txt, 'utf8').split('\n')[0].trim(), label: null, fields: null, file: txt };
  return { prompt: null, label: null, fields: null, file: null };
}

/** A folder of image files (recursive, sorted), with sidecars or `.txt` captions when present. */
function readImageFolder(dir: string): ImageSet {
  const files = listImageFiles(dir);
  const images: EvalImage[] = [];
  const fingerprint: string[] = [];
  for (const file of files) {
    const side = readSidecar(file);
    const id = path.relative(dir, file).split(path.sep).join('/').replace(/\.[^./]+$/, '');
    images.push({ id, ref: { kind: 'file', path: file }, prompt: side.prompt, label: side.label, sidecar: side.fields });
    fingerprint.push(fileLine(dir, file));
  }
  return { root: dir, layout: 'folder', images, fingerprint };
}

/** A dataset folder with `manifest.jsonl` (captions and `meta.label` as the data pipeline writes them). */
function readManifestSet(dir: string): ImageSet {
  const manifest = path.join(dir, MANIFEST_FILE);
  const entries = readManifest(manifest);
  const files = new Set<string>([manifest]);
  const images = entries.map((e): EvalImage => {
    files.add(e.image.path);
    return { id: e.id, ref: e.image, prompt: e.captions[0]?.text ?? null, label: optionalLabel(e.meta?.label), sidecar: null };
  });
  const fingerprint = [...files].sort().map((f) => {
    if (!fs.existsSync(f)) throw new Error(`${manifest}: image file ${f} does not exist`);
    return fileLine(dir, f);
  });
  return { root: dir, layout: 'manifest', images, fingerprint };
}

/** Reads the image list of a folder (plain or dataset layout). */
export function readImageSet(dir: string): ImageSet {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: image folder does not exist`);
  const set = fs.existsSync(path.join(dir, MANIFEST_FILE)) ? readManifestSet(dir) : readImageFolder(dir);
  if (set.images.length === 0) throw new Error(`${dir}: no images found (${IMAGE_EXTENSIONS.join(', ')}, or a ${MANIFEST_FILE})`);
  return set;
}

/** Decodes images to 8-bit RGB at their own size (alpha dropped, grey replicated). */
export class ImageDecoder {
  private readonly packs = new ImagePacks();

  async decode(image: EvalImage): Promise<ImageU8> {
    const ref = image.ref;
    if (ref.kind === 'pack') {
      const { pack: p, pixels: src } = this.packs.slice(ref);
      const n = p.height * p.width;
      const data = p.channels === 3 ? src.slice() : new Uint8Array(n * 3);
      if (p.channels === 1) for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = src[i];
      return { data, width: p.width, height: p.height, channels: 3 };
    }
    const file = ref.path;
    try {
      const { data, info } = await sharp(file, { failOn: 'error' }).removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
      return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels: 3 };
    } catch (e) {
      throw new Error(`${file}: cannot decode image (${(e as Error).message})`);
    }
  }

  async decodeAll(images: EvalImage[]): Promise<ImageU8[]> {
    return Promise.all(images.map((im) => this.decode(im)));
  }
}
