/**
 * Crash-safe writes: data goes to a temporary sibling, is flushed, then renamed over the target, so
 * a reader never sees a half-written file and an interrupted write loses nothing that was there.
 */
import * as fs from 'fs';
import * as path from 'path';

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
}

/** Writes `chunks` to `file` atomically; creates the parent folder. */
export function writeFileAtomic(file: string, chunks: Buffer | string | Array<Buffer | Uint8Array>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = tempName(file);
  const fd = fs.openSync(tmp, 'w');
  try {
    const list = Array.isArray(chunks) ? chunks : [typeof chunks === 'string' ? Buffer.from(chunks, 'utf8') : chunks];
    for (const c of list) {
      let off = 0;
      while (off < c.length) off += fs.writeSync(fd, c, off, c.length - off);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

/**
 * Writes a whole folder atomically: `fill(tmpDir)` writes into a temporary sibling folder, which is
 * then renamed to `dir` (replacing an existing one only after the new one is complete).
 */
export function writeDirAtomic(dir: string, fill: (tmpDir: string) => void): void {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = tempName(dir);
  fs.mkdirSync(tmp);
  try {
    fill(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (fs.existsSync(dir)) {
    const old = `${tmp}.old`;
    fs.renameSync(dir, old);
    fs.renameSync(tmp, dir);
    fs.rmSync(old, { recursive: true, force: true });
  } else {
    fs.renameSync(tmp, dir);
  }
}
