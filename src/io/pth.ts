/**
 * A safe reader for PyTorch checkpoints (`torch.save` files: `.pth`, `.pt`, `pytorch_model.bin`),
 * following torch/serialization.py's two formats:
 *
 * - zip (torch >= 1.6): `<archive>/data.pkl` (the pickled object), `<archive>/data/<key>` (one stored
 *   entry per storage), `<archive>/byteorder`;
 * - legacy: five pickles back to back (magic number, protocol version, sys info, the object, the list
 *   of storage keys), then each storage as an int64 element count followed by its raw bytes.
 *
 * The object pickle runs in the restricted VM of io/pickle.ts: only tensor reconstruction
 * (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, ...), `collections.OrderedDict`,
 * `torch.Size` and the `torch.*Storage` types are allowed; anything else is refused by name before it
 * could be called. Tensors come back as lazy references: opening a multi-GB checkpoint reads the
 * pickle only, and each tensor's bytes are read from their offset when asked for.
 */
import * as fs from 'fs';
import { ZipReader } from './zip';
import { BufferSource, ByteSource, PickleError, PyGlobal, isPyGlobal, unpickle } from './pickle';
import { HostTensor, SafetensorsDType, decodeBytes, dtypeSize, toFloat32 } from './safetensors';
import { TensorSource } from '../nn/module';

export class PthError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'PthError';
  }
}

/** `torch.<Name>Storage` -> element type. */
const STORAGE_DTYPES: Record<string, SafetensorsDType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** One storage (a flat buffer shared by the tensors viewing it). */
interface StorageRef {
  key: string;
  dtype: SafetensorsDType;
  /** Element count, from the persistent id. */
  numel: number;
  /** Legacy views: element offset into the root storage. */
  viewOffset: number;
  rootKey: string;
}

/** A tensor in a checkpoint, not yet read. */
export class PthTensor {
  constructor(
    private readonly owner: PthFile,
    readonly storage: StorageRef,
    /** Element offset into the storage. */
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}

  get dtype(): SafetensorsDType {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Reads the tensor's elements in C order. */
  read(): HostTensor {
    return this.owner.readTensor(this);
  }
}

/** A Python value from a checkpoint with tensors as `PthTensor`. */
export type PthValue = null | boolean | number | bigint | string | Buffer | PthTensor | PthValue[] | Map<unknown, PthValue>;

function asInt(v: unknown, what: string, file: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new PthError(file, `${what}: expected an integer, got ${String(v)}`);
}

function asIntList(v: unknown, what: string, file: string): number[] {
  if (!Array.isArray(v)) throw new PthError(file, `${what}: expected a tuple of integers`);
  return v.map((x, i) => asInt(x, `${what}[${i}]`, file));
}

/** Reads bytes of a storage: from a zip entry, or from the legacy file's storage area. */
interface StorageReader {
  read(key: string, byteStart: number, byteLength: number): Buffer;
  close(): void;
}

/** Sequential buffered reads from a file (legacy checkpoints start with their pickles). */
class FileSource implements ByteSource {
  pos: number;
  private chunk = Buffer.alloc(0);
  private chunkStart = 0;
  constructor(private readonly fd: number, private readonly file: string, start: number) {
    this.pos = start;
  }
  private ensure(n: number): void {
    if (this.pos >= this.chunkStart && this.pos + n <= this.chunkStart + this.chunk.length) return;
    const want = Math.max(n, 1 << 20);
    const buf = Buffer.alloc(want);
    const got = fs.readSync(this.fd, buf, 0, want, this.pos);
    this.chunk = buf.subarray(0, got);
    this.chunkStart = this.pos;
    if (got < n) throw new PickleError(this.file, `unexpected end of file at byte ${this.pos + got} (truncated?)`);
  }
  byte(): number {
    this.ensure(1);
    return this.chunk[this.pos++ - this.chunkStart];
  }
  bytes(n: number): Buffer {
    this.ensure(n);
    const off = this.pos - this.chunkStart;
    this.pos += n;
    return this.chunk.subarray(off, off + n);
  }
  line(): string {
    let s = '';
    for (;;) {
      const b = this.byte();
      if (b === 0x0a) return s;
      s += String.fromCharCode(b);
      if (s.length > 1 << 16) throw new PickleError(this.file, 'pickle text argument too long');
    }
  }
}

/** The legacy format's magic number and protocol version (torch/serialization.py). */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

export class PthFile {
  private readonly storages = new Map<string, StorageRef>();
  private reader: StorageReader | null = null;
  private bigEndian = false;
  /** The unpickled object. */
  root: PthValue = null;

  private constructor(readonly file: string) {}

  /** Opens a checkpoint and unpickles its object (tensors stay on disk). */
  static open(file: string): PthFile {
    if (!fs.existsSync(file)) throw new PthError(file, 'no such file');
    const f = new PthFile(file);
    try {
      if (ZipReader.looksLikeZip(file)) f.openZip();
      else f.openLegacy();
    } catch (e) {
      f.close();
      if (e instanceof PickleError || e instanceof PthError) throw e;
      throw new PthError(file, (e as Error).message);
    }
    return f;
  }

  /** The allowlist: every global a state-dict checkpoint may name. */
  private resolveGlobal(module: string, name: string): PyGlobal | null {
    const file = this.file;
    const g = (call?: (args: unknown[]) => unknown): PyGlobal => ({ module, name, call });
    const rebuildTensor = (args: unknown[]): PthTensor => {
      const [storage, offset, size, stride] = args;
      if (!(storage instanceof Object) || !('key' in (storage as object))) throw new PthError(file, `${module}.${name}: first argument is not a storage`);
      const s = storage as StorageRef;
      return new PthTensor(this, s, asInt(offset, 'storage_offset', file) + s.viewOffset, asIntList(size, 'size', file), asIntList(stride, 'stride', file));
    };
    const key = `${module}.${name}`;
    switch (key) {
      case 'torch._utils._rebuild_tensor_v2':
      case 'torch._utils._rebuild_tensor':
        return g(rebuildTensor);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        return g((args) => {
          if (!(args[0] instanceof PthTensor)) throw new PthError(file, `${key}: data is not a tensor`);
          return args[0];
        });
      case 'torch._tensor._rebuild_from_type_v2':
        // (func, type, args, state): a tensor subclass; only plain tensors and parameters are accepted.
        return g((args) => {
          const [fn, type, fnArgs] = args;
          const typeName = isPyGlobal(type) ? `${type.module}.${type.name}` : String(type);
          if (typeName !== 'torch.Tensor' && typeName !== 'torch.nn.parameter.Parameter') {
            throw new PthError(file, `${key}: tensor type ${typeName} is not supported`);
          }
          if (!isPyGlobal(fn) || !fn.call || !Array.isArray(fnArgs)) throw new PthError(file, `${key}: bad rebuild function`);
          return fn.call(fnArgs);
        });
      case 'collections.OrderedDict':
        return g((args) => {
          const m = new Map<unknown, unknown>();
          const items = args[0];
          if (Array.isArray(items)) for (const kv of items) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
          return m;
        });
      case 'torch.Size':
        return g((args) => (Array.isArray(args[0]) ? [...args[0]] : []));
      case 'torch.Tensor':
      case 'torch.nn.parameter.Parameter':
        return g();
    }
    if (module === 'torch' && name in STORAGE_DTYPES) return g();
    return null;
  }

  /** ('storage', storage_type, key, location, numel[, view_metadata]) -> a StorageRef. */
  private persistentLoad(pid: unknown): StorageRef {
    const file = this.file;
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new PthError(file, `unsupported persistent id ${JSON.stringify(Array.isArray(pid) ? pid[0] : typeof pid)} (only tensor storages)`);
    }
    const [, type, rawKey, , rawNumel, view] = pid;
    if (!isPyGlobal(type) || !(type.name in STORAGE_DTYPES)) {
      throw new PthError(file, `storage type ${isPyGlobal(type) ? `${type.module}.${type.name}` : String(type)} is not supported`);
    }
    const key = String(rawKey);
    const numel = asInt(rawNumel, `storage ${key} size`, file);
    const dtype = STORAGE_DTYPES[type.name];
    const existing = this.storages.get(key);
    const root: StorageRef = existing ?? { key, dtype, numel, viewOffset: 0, rootKey: key };
    if (!existing) this.storages.set(key, root);
    if (Array.isArray(view) && view.length === 3) {
      // Legacy storage views: (view_key, element offset into the root, view size).
      return { key: String(view[0]), dtype, numel: asInt(view[2], 'view size', file), viewOffset: asInt(view[1], 'view offset', file), rootKey: key };
    }
    return root;
  }

  private unpickleFrom(src: ByteSource, withStorages: boolean): unknown {
    return unpickle(src, {
      source: this.file,
      resolveGlobal: (m, n) => this.resolveGlobal(m, n),
      persistentLoad: withStorages ? (pid) => this.persistentLoad(pid) : undefined,
    });
  }

  private openZip(): void {
    const zip = ZipReader.open(this.file);
    this.reader = {
      read: (key, start, length) => zip.readRange(`${prefix}/data/${key}`, start, length),
      close: () => zip.close(),
    };
    const pkl = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl.length !== 1) {
      throw new PthError(this.file, pkl.length === 0 ? 'zip archive without <name>/data.pkl: not a PyTorch checkpoint' : `several data.pkl entries (${pkl.join(', ')})`);
    }
    const prefix = pkl[0].slice(0, -'/data.pkl'.length);
    if (zip.has(`${prefix}/byteorder`)) this.bigEndian = zip.read(`${prefix}/byteorder`).toString('utf8').trim() === 'big';
    this.root = this.unpickleFrom(new BufferSource(zip.read(pkl[0]), `${this.file}: ${pkl[0]}`), true) as PthValue;
    for (const s of this.storages.values()) {
      const name = `${prefix}/data/${s.key}`;
      if (!zip.has(name)) throw new PthError(this.file, `storage "${s.key}" has no entry ${name}`);
      const e = zip.entry(name);
      const need = s.numel * dtypeSize(s.dtype);
      if (e.uncompressedSize < need) throw new PthError(this.file, `storage "${s.key}" holds ${e.uncompressedSize} bytes, ${s.dtype} x ${s.numel} needs ${need}`);
    }
  }

  private openLegacy(): void {
    const fd = fs.openSync(this.file, 'r');
    this.reader = { read: () => Buffer.alloc(0), close: () => fs.closeSync(fd) };
    const src = new FileSource(fd, this.file, 0);
    let magic: unknown;
    try {
      magic = this.unpickleFrom(src, false);
    } catch (e) {
      throw new PthError(this.file, `not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save file: ${(e as Error).message})`);
    }
    if (BigInt(magic as number | bigint) !== LEGACY_MAGIC) throw new PthError(this.file, 'not a PyTorch checkpoint (wrong magic number)');
    const protocol = this.unpickleFrom(src, false);
    if (protocol !== LEGACY_PROTOCOL) throw new PthError(this.file, `unsupported legacy protocol version ${String(protocol)}`);
    const sysInfo = this.unpickleFrom(src, false);
    if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) this.bigEndian = true;
    this.root = this.unpickleFrom(src, true) as PthValue;
    const keys = this.unpickleFrom(src, false);
    if (!Array.isArray(keys)) throw new PthError(this.file, 'legacy checkpoint: storage key list missing');
    // Storages follow in the order of `keys`, each as int64 element count + bytes: walk the counts only.
    const size = fs.fstatSync(fd).size;
    const offsets = new Map<string, number>();
    let pos = src.pos;
    for (const k of keys) {
      const key = String(k);
      const s = this.storages.get(key);
      if (!s) throw new PthError(this.file, `legacy checkpoint lists storage "${key}" that no tensor uses`);
      const head = Buffer.alloc(8);
      if (fs.readSync(fd, head, 0, 8, pos) < 8) throw new PthError(this.file, `storage "${key}" header past the end of the file (truncated?)`);
      const numel = Number(head.readBigInt64LE(0));
      if (numel !== s.numel) throw new PthError(this.file, `storage "${key}" has ${numel} elements on disk, the pickle says ${s.numel}`);
      offsets.set(key, pos + 8);
      pos += 8 + numel * dtypeSize(s.dtype);
      if (pos > size) throw new PthError(this.file, `storage "${key}" runs past the end of the file (truncated?)`);
    }
    this.reader = {
      read: (key, start, length) => {
        const base = offsets.get(key);
        if (base === undefined) throw new PthError(this.file, `storage "${key}" is not in the file`);
        const buf = Buffer.alloc(length);
        let off = 0;
        while (off < length) {
          const n = fs.readSync(fd, buf, off, Math.min(length - off, 1 << 30), base + start + off);
          if (n === 0) throw new PthError(this.file, `unexpected end of file in storage "${key}"`);
          off += n;
        }
        return buf;
      },
      close: () => fs.closeSync(fd),
    };
  }

  /** Reads a tensor's elements in C order (strided views are gathered). */
  readTensor(t: PthTensor): HostTensor {
    if (!this.reader) throw new PthError(this.file, 'checkpoint is closed');
    const size = dtypeSize(t.dtype);
    const n = t.numel;
    const rank = t.shape.length;
    if (n === 0) return { dtype: t.dtype, shape: [...t.shape], data: decodeBytes(Buffer.alloc(0), t.dtype, 0) };
    // Element span the view touches, relative to its offset.
    let maxRel = 0;
    for (let d = 0; d < rank; d++) {
      if (t.stride[d] < 0) throw new PthError(this.file, `negative strides are not supported`);
      maxRel += (t.shape[d] - 1) * t.stride[d];
    }
    const root = this.storages.get(t.storage.rootKey)!;
    if (t.offset + maxRel >= root.numel) {
      throw new PthError(this.file, `tensor view [offset ${t.offset}, shape ${t.shape}, stride ${t.stride}] exceeds its storage of ${root.numel} elements`);
    }
    const raw = this.reader.read(t.storage.rootKey, t.offset * size, (maxRel + 1) * size);
    if (this.bigEndian && size > 1) {
      if (size === 2) raw.swap16();
      else if (size === 4) raw.swap32();
      else raw.swap64();
    }
    const span = decodeBytes(raw, t.dtype, maxRel + 1);
    let contiguous = true;
    for (let d = rank - 1, acc = 1; d >= 0; d--) {
      if (t.shape[d] !== 1 && t.stride[d] !== acc) contiguous = false;
      acc *= t.shape[d];
    }
    if (contiguous) return { dtype: t.dtype, shape: [...t.shape], data: span };
    const out = new (span.constructor as { new (n: number): HostTensor['data'] })(n);
    const idx = new Array<number>(rank).fill(0);
    for (let o = 0; o < n; o++) {
      let src = 0;
      for (let d = 0; d < rank; d++) src += idx[d] * t.stride[d];
      (out as unknown as number[])[o] = (span as unknown as number[])[src];
      for (let d = rank - 1; d >= 0; d--) {
        if (++idx[d] < t.shape[d]) break;
        idx[d] = 0;
      }
    }
    return { dtype: t.dtype, shape: [...t.shape], data: out };
  }

  /**
   * The tensors of a (nested) state dict as dotted keys: `path` selects a sub-dict first (e.g.
   * `state_dict`, `ema`); nested dicts are flattened (`a.b.weight`), non-tensor values skipped.
   */
  tensors(path?: string): Map<string, PthTensor> {
    let node: unknown = this.root;
    if (path) {
      for (const part of path.split('.')) {
        if (!(node instanceof Map) || !node.has(part)) {
          const avail = node instanceof Map ? [...node.keys()].map(String).join(', ') : 'not a dict';
          throw new PthError(this.file, `no "${path}" in the checkpoint (top-level keys: ${avail})`);
        }
        node = node.get(part);
      }
    }
    const out = new Map<string, PthTensor>();
    const walk = (v: unknown, prefix: string) => {
      if (v instanceof PthTensor) out.set(prefix, v);
      else if (v instanceof Map) for (const [k, x] of v) walk(x, prefix ? `${prefix}.${String(k)}` : String(k));
    };
    walk(node, '');
    return out;
  }

  /** Top-level keys of a dict checkpoint (empty for other objects). */
  topLevelKeys(): string[] {
    return this.root instanceof Map ? [...this.root.keys()].map(String) : [];
  }

  close(): void {
    this.reader?.close();
    this.reader = null;
  }
}

/** A checkpoint's tensors as a TensorSource for `Module.loadStateDict`. */
export class PthCheckpoint implements TensorSource {
  private constructor(readonly file: PthFile, readonly map: Map<string, PthTensor>) {}

  /**
   * Opens `path`; `select` picks a sub-dict (`state_dict`). Without it, a checkpoint whose root holds
   * tensors directly is used as is, and one whose only dict-valued entry is `state_dict` uses that.
   */
  static open(path: string, select?: string): PthCheckpoint {
    const f = PthFile.open(path);
    try {
      if (select) return new PthCheckpoint(f, f.tensors(select));
      const direct = f.root instanceof Map && [...f.root.values()].some((v) => v instanceof PthTensor);
      const sel = !direct && f.root instanceof Map && f.root.has('state_dict') ? 'state_dict' : undefined;
      return new PthCheckpoint(f, f.tensors(sel));
    } catch (e) {
      f.close();
      throw e;
    }
  }

  keys(): string[] {
    return [...this.map.keys()];
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  info(key: string): { shape: readonly number[]; dtype: SafetensorsDType } {
    const t = this.tensor(key);
    return { shape: t.shape, dtype: t.dtype };
  }

  tensor(key: string): PthTensor {
    const t = this.map.get(key);
    if (!t) throw new PthError(this.file.file, `no tensor named "${key}"`);
    return t;
  }

  read(key: string): HostTensor {
    return this.tensor(key).read();
  }

  readFloat32(key: string): Float32Array {
    return toFloat32(this.read(key), `${this.file.file}: tensor "${key}"`);
  }

  close(): void {
    this.file.close();
  }
}
