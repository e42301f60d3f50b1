/**
 * A minimal ZIP container reader and writer (PKWARE APPNOTE: local headers, central directory, the
 * ZIP64 extensions). Two formats in this project are ZIP files: PyTorch's `torch.save` archives (every
 * entry stored, data aligned to 64 bytes) and NumPy's `.npz` (stored by `np.savez`, deflated by
 * `np.savez_compressed`).
 *
 * The reader parses only the central directory when opened; entry data is read on demand at its
 * offset, and stored entries can be read in ranges, so a multi-GB archive is never loaded whole.
 * Deflate goes through node's zlib; other compression methods, encryption and multi-disk archives
 * are errors naming the archive and the entry.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { writeFileAtomic } from './atomic';

export class ZipError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ZipError';
  }
}

/** One entry of the central directory. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  /** Offset of the entry's local header. */
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
/** EOCD record (22 bytes) plus the longest possible archive comment. */
const EOCD_SEARCH = 22 + 0xffff;

function u64(buf: Buffer, off: number, file: string, what: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(file, `${what} ${v} is too large`);
  return Number(v);
}

/** An open ZIP archive. Close it when done. */
export class ZipReader {
  private fd: number | null;
  private readonly byName = new Map<string, ZipEntry>();
  /** Data offsets of entries, resolved from their local headers on first use. */
  private readonly dataOffsets = new Map<string, number>();

  private constructor(readonly file: string, fd: number, readonly size: number, entries: ZipEntry[]) {
    this.fd = fd;
    for (const e of entries) this.byName.set(e.name, e);
  }

  /** Opens `file` and reads its central directory (nothing else). */
  static open(file: string): ZipReader {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new ZipError(file, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      const entries = readCentralDirectory(file, fd, size);
      return new ZipReader(file, fd, size, entries);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Whether `file` starts like a ZIP archive (a local header or an empty archive's EOCD). */
  static looksLikeZip(file: string): boolean {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(4);
      const n = fs.readSync(fd, b, 0, 4, 0);
      if (n < 4) return false;
      const sig = b.readUInt32LE(0);
      return sig === SIG_LOCAL || sig === SIG_EOCD;
    } finally {
      fs.closeSync(fd);
    }
  }

  entries(): ZipEntry[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): ZipEntry {
    const e = this.byName.get(name);
    if (!e) throw new ZipError(this.file, `no entry "${name}"`);
    return e;
  }

  /** Absolute file offset of an entry's data (after its local header). */
  dataOffset(name: string): number {
    const cached = this.dataOffsets.get(name);
    if (cached !== undefined) return cached;
    const e = this.entry(name);
    const h = this.readAt(e.localHeaderOffset, 30);
    if (h.readUInt32LE(0) !== SIG_LOCAL) throw new ZipError(this.file, `entry "${name}": bad local header signature at ${e.localHeaderOffset}`);
    const off = e.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (off + e.compressedSize > this.size) throw new ZipError(this.file, `entry "${name}": data runs past the end of the file (truncated?)`);
    this.dataOffsets.set(name, off);
    return off;
  }

  /** The whole (decompressed) content of an entry. */
  read(name: string): Buffer {
    const e = this.entry(name);
    const raw = this.readAt(this.dataOffset(name), e.compressedSize);
    let out: Buffer;
    if (e.method === METHOD_STORED) out = raw;
    else if (e.method === METHOD_DEFLATE) {
      try {
        out = zlib.inflateRawSync(raw);
      } catch (err) {
        throw new ZipError(this.file, `entry "${name}": corrupt deflate data (${(err as Error).message})`);
      }
    } else throw new ZipError(this.file, `entry "${name}": compression method ${e.method} is not supported (only stored and deflate)`);
    if (out.length !== e.uncompressedSize) {
      throw new ZipError(this.file, `entry "${name}": ${out.length} bytes after decompression, the directory says ${e.uncompressedSize}`);
    }
    return out;
  }

  /**
   * `length` bytes of a STORED entry starting at `start` within it, read straight from the file: the
   * way large tensors are read without loading the entry.
   */
  readRange(name: string, start: number, length: number): Buffer {
    const e = this.entry(name);
    if (e.method !== METHOD_STORED) throw new ZipError(this.file, `entry "${name}" is compressed; ranges can only be read from stored entries`);
    if (start < 0 || length < 0 || start + length > e.uncompressedSize) {
      throw new ZipError(this.file, `entry "${name}": range [${start}, ${start + length}) is outside its ${e.uncompressedSize} bytes`);
    }
    return this.readAt(this.dataOffset(name) + start, length);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private readAt(position: number, length: number): Buffer {
    if (this.fd === null) throw new ZipError(this.file, 'archive is closed');
    return readExactly(this.file, this.fd, position, length);
  }
}

function readExactly(file: string, fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let off = 0;
  while (off < length) {
    const n = fs.readSync(fd, buf, off, Math.min(length - off, 1 << 30), position + off);
    if (n === 0) throw new ZipError(file, `unexpected end of file at byte ${position + off}`);
    off += n;
  }
  return buf;
}

function readCentralDirectory(file: string, fd: number, size: number): ZipEntry[] {
  // 1. Find the end-of-central-directory record, searching backwards over a possible comment.
  const tailLen = Math.min(size, EOCD_SEARCH);
  if (tailLen < 22) throw new ZipError(file, `not a ZIP archive (${size} bytes)`);
  const tail = readExactly(file, fd, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError(file, 'not a ZIP archive (no end-of-central-directory record; truncated?)');
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) throw new ZipError(file, 'multi-disk ZIP archives are not supported');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);

  // 2. ZIP64: the real values live in the ZIP64 EOCD record, found through the locator before the EOCD.
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locPos = size - tailLen + eocd - 20;
    if (locPos < 0) throw new ZipError(file, 'ZIP64 locator missing');
    const loc = readExactly(file, fd, locPos, 20);
    if (loc.readUInt32LE(0) !== SIG_ZIP64_LOCATOR) throw new ZipError(file, 'ZIP64 locator missing');
    const recPos = u64(loc, 8, file, 'ZIP64 record offset');
    const rec = readExactly(file, fd, recPos, 56);
    if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw new ZipError(file, `bad ZIP64 end-of-central-directory signature at ${recPos}`);
    count = u64(rec, 32, file, 'entry count');
    cdSize = u64(rec, 40, file, 'central directory size');
    cdOffset = u64(rec, 48, file, 'central directory offset');
  }
  if (cdOffset + cdSize > size) throw new ZipError(file, `central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end of the file (${size} bytes; truncated?)`);

  // 3. Walk the central directory.
  const cd = readExactly(file, fd, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw new ZipError(file, `central directory entry ${i} is corrupt`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    if (flags & 1) throw new ZipError(file, `entry "${name}" is encrypted`);
    // ZIP64 extra field (id 1): the 64-bit values of whichever fields are saturated, in this order.
    let q = p + 46 + nameLen;
    const extraEnd = q + extraLen;
    while (q + 4 <= extraEnd) {
      const id = cd.readUInt16LE(q);
      const len = cd.readUInt16LE(q + 2);
      if (id === 0x0001) {
        let r = q + 4;
        if (uncompressedSize === 0xffffffff) { uncompressedSize = u64(cd, r, file, 'entry size'); r += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(cd, r, file, 'entry size'); r += 8; }
        if (localHeaderOffset === 0xffffffff) { localHeaderOffset = u64(cd, r, file, 'entry offset'); r += 8; }
      }
      q += 4 + len;
    }
    entries.push({ name, method, compressedSize, uncompressedSize, crc32, localHeaderOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}

/** One file to put in an archive. */
export interface ZipInput {
  name: string;
  data: Buffer | Uint8Array;
}

/**
 * Serialises `files` as a ZIP archive (stored, or deflated with `compress`). No ZIP64: each entry and
 * the whole archive must stay under 4 GB, which covers `.npz` statistics files.
 */
export function serializeZip(files: ZipInput[], opts: { compress?: boolean } = {}): Buffer[] {
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  // 1980-01-01 00:00, the DOS epoch: fixed so the same content gives the same bytes.
  const dosTime = 0;
  const dosDate = (0 << 9) | (1 << 5) | 1;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const raw = Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength);
    const method = opts.compress ? METHOD_DEFLATE : METHOD_STORED;
    const body = opts.compress ? zlib.deflateRawSync(raw) : raw;
    const crc = zlib.crc32(raw) >>> 0;
    if (offset + body.length > 0xfffffff0) throw new Error(`zip write: archive would exceed 4 GB at entry "${f.name}"`);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(dosTime, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const cen = Buffer.alloc(46);
    cen.writeUInt32LE(SIG_CENTRAL, 0);
    cen.writeUInt16LE(20, 4);
    cen.writeUInt16LE(20, 6);
    cen.writeUInt16LE(0x0800, 8);
    cen.writeUInt16LE(method, 10);
    cen.writeUInt16LE(dosTime, 12);
    cen.writeUInt16LE(dosDate, 14);
    cen.writeUInt32LE(crc, 16);
    cen.writeUInt32LE(body.length, 20);
    cen.writeUInt32LE(raw.length, 24);
    cen.writeUInt16LE(name.length, 28);
    cen.writeUInt32LE(offset, 42);
    central.push(cen, name);
    chunks.push(local, name, body);
    offset += 30 + name.length + body.length;
  }
  const cdSize = central.reduce((n, b) => n + b.length, 0);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(SIG_EOCD, 0);
  eocd.writeUInt16LE(files.length, 8);
  eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(offset, 16);
  return [...chunks, ...central, eocd];
}

/** Writes a ZIP archive atomically. */
export function writeZip(file: string, files: ZipInput[], opts: { compress?: boolean } = {}): void {
  writeFileAtomic(file, serializeZip(files, opts));
}
