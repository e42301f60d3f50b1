/** Small on-disk datasets for the data tests: PNGs made with sharp, plus deliberately broken files. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sana-data-${prefix}-`));
}

/** Pixel (y, x, c) of the test pattern: distinct, so crops and resizes can be checked. */
export function patternValue(y: number, x: number, c: number, seed = 0): number {
  return (seed * 31 + y * 17 + x * 5 + c * 71) % 256;
}

/** RGB uint8 [h, w, 3] of the test pattern. */
export function patternPixels(h: number, w: number, seed = 0): Uint8Array {
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = patternValue(y, x, c, seed);
  return out;
}

/** Writes an RGB PNG of the test pattern. */
export async function writePng(file: string, h: number, w: number, seed = 0): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(Buffer.from(patternPixels(h, w, seed)), { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

/** Writes a PNG, then cuts it to 60% of its bytes (a truncated download). */
export async function writeTruncatedPng(file: string, h: number, w: number): Promise<void> {
  await writePng(file, h, w, 9);
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
}

export function writeJsonl(file: string, lines: unknown[]): void {
  fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}
