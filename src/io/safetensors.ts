/**
 * Reader and writer for the safetensors format (huggingface/safetensors, `docs/` format description):
 * 8-byte little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
 *
 * The reader opens a file and validates the whole header before any tensor is read; tensors are read
 * one at a time at their offsets, so a 10 GB checkpoint is never held in memory. Every malformed input
 * (truncation, offsets out of range or overlapping, unknown dtypes, byte counts that disagree with the
 * shape, a non-JSON or oversized header) raises a `SafetensorsError` naming the file and the problem.
 * The writer mirrors the reference's layout (keys sorted, data ordered by alignment then name, header
 * padded with spaces to 8 bytes) so an F32 file read and written back is byte-identical.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from './atomic';

export const SAFETENSORS_DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64', 'BOOL'] as const;
export type SafetensorsDType = (typeof SAFETENSORS_DTYPES)[number];

const DTYPE_SIZE: Record<SafetensorsDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1,
};

/** Largest header we accept: the reference rejects headers over 100 MB too. */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

/** A tensor read from disk: `data` has one element per entry (shape product). */
export interface HostTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Uint32Array | BigInt64Array | BigUint64Array;
}

export function dtypeSize(dtype: SafetensorsDType): number {
  return DTYPE_SIZE[dtype];
}

export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && (SAFETENSORS_DTYPES as readonly string[]).includes(s);
}

/** Parses and validates a header against the file size; throws SafetensorsError on any inconsistency. */
export function parseHeader(file: string, headerBytes: Buffer, dataBytes: number): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(headerBytes.toString('utf8'));
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, 'header must be a JSON object');
  }
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new SafetensorsError(file, '__metadata__ must be an object of strings');
      }
      for (const [mk, mv] of Object.entries(value as Record<string, unknown>)) {
        if (typeof mv !== 'string') throw new SafetensorsError(file, `__metadata__.${mk} must be a string`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (value === null || typeof value !== 'object') throw new SafetensorsError(file, `tensor "${key}": entry must be an object`);
    if (!isDType(v.dtype)) throw new SafetensorsError(file, `tensor "${key}": unknown dtype ${JSON.stringify(v.dtype)} (expected one of ${SAFETENSORS_DTYPES.join(', ')})`);
    if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `tensor "${key}": shape must be an array of non-negative integers, got ${JSON.stringify(v.shape)}`);
    }
    const offs = v.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new SafetensorsError(file, `tensor "${key}": data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const shape = v.shape as number[];
    const expected = numElements(shape) * DTYPE_SIZE[v.dtype];
    if (end < begin) throw new SafetensorsError(file, `tensor "${key}": data_offsets end ${end} < begin ${begin}`);
    if (end - begin !== expected) {
      throw new SafetensorsError(file, `tensor "${key}": ${end - begin} bytes for ${v.dtype} shape [${shape}] (expected ${expected})`);
    }
    if (end > dataBytes) {
      throw new SafetensorsError(file, `tensor "${key}": data_offsets [${begin}, ${end}] past the end of the data (${dataBytes} bytes; file truncated?)`);
    }
    tensors.set(key, { dtype: v.dtype, shape, begin, end });
  }
  // Tensors must not overlap (zero-sized ones occupy nothing).
  const spans = [...tensors.entries()].filter(([, t]) => t.end > t.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][1].begin < spans[i - 1][1].end) {
      throw new SafetensorsError(file, `tensors "${spans[i - 1][0]}" and "${spans[i][0]}" overlap`);
    }
  }
  return { tensors, metadata };
}

/** IEEE half to float, for F16 upcasts. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Decodes raw little-endian bytes of `dtype` into a typed array (copying, so alignment never matters). */
export function decodeBytes(bytes: Buffer, dtype: SafetensorsDType, count: number): HostTensor['data'] {
  const ab = new ArrayBuffer(count * DTYPE_SIZE[dtype]);
  new Uint8Array(ab).set(bytes.subarray(0, count * DTYPE_SIZE[dtype]));
  switch (dtype) {
    case 'F64': return new Float64Array(ab);
    case 'F32': return new Float32Array(ab);
    case 'I64': return new BigInt64Array(ab);
    case 'U64': return new BigUint64Array(ab);
    case 'I32': return new Int32Array(ab);
    case 'U32': return new Uint32Array(ab);
    case 'I16': return new Int16Array(ab);
    case 'U16': return new Uint16Array(ab);
    case 'I8': return new Int8Array(ab);
    case 'U8':
    case 'BOOL': return new Uint8Array(ab);
    case 'BF16': {
      // bfloat16 is the top half of a float32: shift into place.
      const src = new Uint16Array(ab);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = src[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'F16': {
      const src = new Uint16Array(ab);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(src[i]);
      return out;
    }
  }
}

/** Converts any host data to float32 (ints by value; 64-bit ints must fit in a double exactly). */
export function toFloat32(t: HostTensor, what: string): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  const out = new Float32Array(t.data.length);
  if (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array) {
    for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
  } else {
    for (let i = 0; i < out.length; i++) out[i] = t.data[i] as number;
  }
  void what;
  return out;
}

/** Converts integer (or bool) host data to int32, failing on values outside the int32 range. */
export function toInt32(t: HostTensor, what: string): Int32Array {
  if (t.data instanceof Int32Array) return t.data;
  const out = new Int32Array(t.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = Number(t.data[i]);
    if (!Number.isInteger(v) || v > 2147483647 || v < -2147483648) {
      throw new Error(`${what}: value ${t.data[i]} at index ${i} does not fit int32`);
    }
    out[i] = v;
  }
  return out;
}

/** One open safetensors file. Close it when done (or use `readSafetensors` for small files). */
export class SafetensorsFile {
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  private fd: number | null;
  private readonly dataStart: number;

  private constructor(readonly file: string, fd: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>, dataStart: number) {
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  /** Opens and validates the header; reads no tensor data. */
  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new SafetensorsError(file, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(file, `file is ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = lenBuf.readBigUInt64LE(0);
      if (headerLen > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(file, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
      }
      const n = Number(headerLen);
      if (8 + n > size) throw new SafetensorsError(file, `header length ${n} runs past the end of the file (${size} bytes; truncated?)`);
      const header = Buffer.alloc(n);
      readFully(fd, header, 8, file);
      const { tensors, metadata } = parseHeader(file, header, size - 8 - n);
      return new SafetensorsFile(file, fd, tensors, metadata, 8 + n);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  info(key: string): TensorInfo {
    const t = this.tensors.get(key);
    if (!t) throw new SafetensorsError(this.file, `no tensor named "${key}"`);
    return t;
  }

  /** Reads one tensor with its own dtype (BF16/F16 are upcast to float32). */
  read(key: string): HostTensor {
    if (this.fd === null) throw new SafetensorsError(this.file, 'file is closed');
    const t = this.info(key);
    const buf = Buffer.alloc(t.end - t.begin);
    readFully(this.fd, buf, this.dataStart + t.begin, this.file);
    return { dtype: t.dtype, shape: [...t.shape], data: decodeBytes(buf, t.dtype, numElements(t.shape)) };
  }

  readFloat32(key: string): Float32Array {
    return toFloat32(this.read(key), `${this.file}: tensor "${key}"`);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

function readFully(fd: number, buf: Buffer, position: number, file: string): void {
  let off = 0;
  while (off < buf.length) {
    const n = fs.readSync(fd, buf, off, Math.min(buf.length - off, 1 << 30), position + off);
    if (n === 0) throw new SafetensorsError(file, `unexpected end of file at byte ${position + off}`);
    off += n;
  }
}

/** Reads every tensor of a (small) file into memory. */
export function readSafetensors(file: string): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(file);
  try {
    const tensors = new Map<string, HostTensor>();
    for (const k of f.keys()) tensors.set(k, f.read(k));
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}

/** A tensor to write: data is taken as-is for its dtype (float32 data may be written as F16/BF16). */
export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: number[];
  data: HostTensor['data'];
}

function floatToBf16(x: number, f32: Float32Array, u32: Uint32Array): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0; // NaN stays NaN
  // Round to nearest even, as torch does when casting to bfloat16.
  return ((bits + 0x7fff + ((bits >> 16) & 1)) >>> 16) & 0xffff;
}

function floatToHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const s = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return s | 0x7c00;
  if (a < 2 ** -24 / 2) return s;
  let e = Math.floor(Math.log2(a));
  if (e < -14) return s | Math.round(a / 2 ** -24);
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) { m = 0; e += 1; }
  return s | ((e + 15) << 10) | m;
}

function encode(t: TensorToWrite, name: string): Buffer {
  const n = numElements(t.shape);
  if (t.data.length !== n) throw new Error(`safetensors write: tensor "${name}" has ${t.data.length} values for shape [${t.shape}]`);
  if (t.dtype === 'BF16' || t.dtype === 'F16') {
    const out = Buffer.alloc(n * 2);
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    for (let i = 0; i < n; i++) {
      const v = Number(t.data[i]);
      out.writeUInt16LE(t.dtype === 'BF16' ? floatToBf16(v, f32, u32) : floatToHalf(v), i * 2);
    }
    return out;
  }
  const size = DTYPE_SIZE[t.dtype];
  if (t.data.BYTES_PER_ELEMENT !== size) {
    throw new Error(`safetensors write: tensor "${name}" data has ${t.data.BYTES_PER_ELEMENT}-byte elements, dtype ${t.dtype} needs ${size}`);
  }
  return Buffer.from(t.data.buffer, t.data.byteOffset, n * size);
}

/** Serialises tensors to safetensors bytes, laid out as the reference writer does. */
export function serializeSafetensors(tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer[] {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  // Data order: larger alignment first, then by name; the JSON header lists keys alphabetically.
  const order = [...entries].sort((a, b) => DTYPE_SIZE[b[1].dtype] - DTYPE_SIZE[a[1].dtype] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const offsets = new Map<string, [number, number]>();
  let pos = 0;
  for (const [name, t] of order) {
    const bytes = numElements(t.shape) * DTYPE_SIZE[t.dtype];
    offsets.set(name, [pos, pos + bytes]);
    pos += bytes;
  }
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  for (const [name, t] of [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: offsets.get(name) };
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return [len, json, ...order.map(([name, t]) => encode(t, name))];
}

/** Writes a safetensors file atomically (temporary file, then rename). */
export function writeSafetensors(file: string, tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}

/** The `model.safetensors.index.json` of a sharded checkpoint. */
export interface ShardIndex {
  metadata?: Record<string, unknown>;
  weight_map: Record<string, string>;
}

/**
 * A checkpoint that may be one file or several shards listed by an index; reads tensors lazily
 * from whichever shard holds them, opening one shard at a time.
 */
export class SafetensorsCheckpoint {
  private open: SafetensorsFile | null = null;
  private readonly infos = new Map<string, { shard: string; info: TensorInfo }>();

  private constructor(readonly source: string, shards: string[]) {
    for (const shard of shards) {
      const f = SafetensorsFile.open(shard);
      try {
        for (const [k, info] of f.tensors) {
          if (this.infos.has(k)) throw new SafetensorsError(shard, `tensor "${k}" also appears in ${this.infos.get(k)!.shard}`);
          this.infos.set(k, { shard, info });
        }
      } finally {
        f.close();
      }
    }
  }

  /**
   * Opens `path`: a `.safetensors` file, a `*.safetensors.index.json`, or a folder holding exactly one
   * of `model.safetensors`, `diffusion_pytorch_model.safetensors` (or their sharded indexes).
   */
  static open(p: string): SafetensorsCheckpoint {
    if (fs.existsSync(p) && fs.statSync(p).isDirectory()) {
      const candidates = ['diffusion_pytorch_model.safetensors', 'model.safetensors', 'diffusion_pytorch_model.safetensors.index.json', 'model.safetensors.index.json'];
      const found = candidates.filter((c) => fs.existsSync(path.join(p, c)));
      if (found.length === 0) {
        throw new SafetensorsError(p, `no weights found (expected one of ${candidates.join(', ')})`);
      }
      return SafetensorsCheckpoint.open(path.join(p, found[0]));
    }
    if (p.endsWith('.index.json')) {
      let index: ShardIndex;
      try {
        index = JSON.parse(fs.readFileSync(p, 'utf8')) as ShardIndex;
      } catch (e) {
        throw new SafetensorsError(p, `cannot read shard index (${(e as Error).message})`);
      }
      if (!index || typeof index.weight_map !== 'object') throw new SafetensorsError(p, 'shard index has no "weight_map" object');
      const shards = [...new Set(Object.values(index.weight_map))].map((s) => path.join(path.dirname(p), s));
      const ckpt = new SafetensorsCheckpoint(p, shards);
      for (const [k, shard] of Object.entries(index.weight_map)) {
        const got = ckpt.infos.get(k);
        if (!got) throw new SafetensorsError(p, `weight_map names "${k}" in ${shard}, but that shard has no such tensor`);
      }
      return ckpt;
    }
    return new SafetensorsCheckpoint(p, [p]);
  }

  keys(): string[] {
    return [...this.infos.keys()];
  }

  has(key: string): boolean {
    return this.infos.has(key);
  }

  info(key: string): TensorInfo {
    const e = this.infos.get(key);
    if (!e) throw new SafetensorsError(this.source, `no tensor named "${key}"`);
    return e.info;
  }

  read(key: string): HostTensor {
    const e = this.infos.get(key);
    if (!e) throw new SafetensorsError(this.source, `no tensor named "${key}"`);
    if (!this.open || this.open.file !== e.shard) {
      this.open?.close();
      this.open = SafetensorsFile.open(e.shard);
    }
    return this.open.read(key);
  }

  readFloat32(key: string): Float32Array {
    return toFloat32(this.read(key), `${this.source}: tensor "${key}"`);
  }

  close(): void {
    this.open?.close();
    this.open = null;
  }
}
