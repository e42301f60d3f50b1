/**
 * NumPy's `.npy` and `.npz` formats (numpy/lib/format.py, `np.savez`): a `.npy` is the magic
 * `\x93NUMPY`, a version, a header length, a Python-literal header dict
 * (`{'descr': '<f8', 'fortran_order': False, 'shape': (2048, 2048), }`) padded with spaces to a
 * 64-byte boundary, then the raw array; a `.npz` is a ZIP archive of `<name>.npy` entries.
 *
 * pytorch-fid stores reference statistics this way (`mu`, `sigma` as float64), so published
 * statistics files (e.g. for MJHQ-30K) can be read and ours can be read by pytorch-fid.
 */
import { writeFileAtomic } from './atomic';
import { ZipReader, serializeZip } from './zip';

export type NpyArray = {
  /** NumPy dtype string without byte order: 'f8', 'f4', 'i8', 'i4', 'u1', 'b1', ... */
  dtype: string;
  shape: number[];
  /** C-order elements (Fortran-order files are transposed on read). */
  data: Float64Array | Float32Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array | Uint32Array | BigInt64Array | BigUint64Array;
};

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

const TYPED: Record<string, { size: number; make: (ab: ArrayBuffer) => NpyArray['data'] }> = {
  f8: { size: 8, make: (ab) => new Float64Array(ab) },
  f4: { size: 4, make: (ab) => new Float32Array(ab) },
  i8: { size: 8, make: (ab) => new BigInt64Array(ab) },
  u8: { size: 8, make: (ab) => new BigUint64Array(ab) },
  i4: { size: 4, make: (ab) => new Int32Array(ab) },
  u4: { size: 4, make: (ab) => new Uint32Array(ab) },
  i2: { size: 2, make: (ab) => new Int16Array(ab) },
  u2: { size: 2, make: (ab) => new Uint16Array(ab) },
  i1: { size: 1, make: (ab) => new Int8Array(ab) },
  u1: { size: 1, make: (ab) => new Uint8Array(ab) },
  b1: { size: 1, make: (ab) => new Uint8Array(ab) },
};

/** Parses the header dict; only the three keys NumPy writes are accepted. */
function parseHeader(text: string, where: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) throw new Error(`${where}: malformed .npy header ${JSON.stringify(text.trim())}`);
  const dims = shape[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${where}: bad dimension "${s}" in .npy header`);
      return n;
    });
  return { descr: descr[1], fortran: fortran[1] === 'True', shape: dims };
}

/** Reorders Fortran-order (column-major) data of `shape` into C order. */
function fortranToC<T extends NpyArray['data']>(data: T, shape: number[]): T {
  const rank = shape.length;
  if (rank < 2) return data;
  const out = new (data.constructor as { new (n: number): T })(data.length);
  // Element at C index (i0..i{r-1}) of the result sits at Fortran offset sum(i_k * prod(shape[<k])).
  const fStrides = new Array<number>(rank);
  let acc = 1;
  for (let k = 0; k < rank; k++) {
    fStrides[k] = acc;
    acc *= shape[k];
  }
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let k = 0; k < rank; k++) src += idx[k] * fStrides[k];
    (out as unknown as number[])[o] = (data as unknown as number[])[src];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

/** Decodes one `.npy` file's bytes; `where` names it in errors. */
export function parseNpy(bytes: Buffer, where = '.npy'): NpyArray {
  if (bytes.length < 10 || !bytes.subarray(0, 6).equals(MAGIC)) throw new Error(`${where}: not a .npy array (bad magic)`);
  const major = bytes[6];
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = bytes.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    headerLen = bytes.readUInt32LE(8);
    start = 12;
  } else throw new Error(`${where}: unsupported .npy version ${major}.${bytes[7]}`);
  if (start + headerLen > bytes.length) throw new Error(`${where}: .npy header runs past the end of the data`);
  const header = parseHeader(bytes.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen), where);
  const m = /^([<>|=]?)([a-z])(\d+)$/.exec(header.descr);
  const key = m ? `${m[2]}${m[3]}` : '';
  const kind = TYPED[key];
  if (!m || !kind) throw new Error(`${where}: unsupported dtype '${header.descr}' (expected a plain numeric dtype such as '<f8')`);
  const bigEndian = m[1] === '>';
  const count = header.shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const nbytes = count * kind.size;
  if (dataStart + nbytes > bytes.length) {
    throw new Error(`${where}: ${bytes.length - dataStart} data bytes for dtype '${header.descr}' shape (${header.shape}) (expected ${nbytes}; truncated?)`);
  }
  const copy = Buffer.from(bytes.subarray(dataStart, dataStart + nbytes));
  if (bigEndian && kind.size > 1) {
    if (kind.size === 2) copy.swap16();
    else if (kind.size === 4) copy.swap32();
    else copy.swap64();
  }
  const ab = copy.buffer.slice(copy.byteOffset, copy.byteOffset + nbytes) as ArrayBuffer;
  let data = kind.make(ab);
  if (header.fortran) data = fortranToC(data, header.shape);
  return { dtype: key, shape: header.shape, data };
}

function descrOf(a: NpyArray['data']): string {
  if (a instanceof Float64Array) return '<f8';
  if (a instanceof Float32Array) return '<f4';
  if (a instanceof BigInt64Array) return '<i8';
  if (a instanceof BigUint64Array) return '<u8';
  if (a instanceof Int32Array) return '<i4';
  if (a instanceof Uint32Array) return '<u4';
  if (a instanceof Int16Array) return '<i2';
  if (a instanceof Uint16Array) return '<u2';
  if (a instanceof Int8Array) return '|i1';
  return '|u1';
}

/** Encodes an array as `.npy` (version 1.0, C order, little-endian), as `np.save` does. */
export function serializeNpy(shape: readonly number[], data: NpyArray['data']): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`npy write: ${data.length} values for shape (${shape})`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descrOf(data)}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64 bytes.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Reads every array of an `.npz` archive, keyed by name without `.npy`. */
export function readNpz(file: string): Map<string, NpyArray> {
  const zip = ZipReader.open(file);
  try {
    const out = new Map<string, NpyArray>();
    for (const name of zip.names()) {
      if (!name.endsWith('.npy')) continue;
      out.set(name.slice(0, -4), parseNpy(zip.read(name), `${file}: ${name}`));
    }
    return out;
  } finally {
    zip.close();
  }
}

/** Writes arrays as an `.npz` archive (stored like `np.savez`, or deflated like `np.savez_compressed`). */
export function writeNpz(file: string, arrays: Record<string, { shape: readonly number[]; data: NpyArray['data'] }>, opts: { compress?: boolean } = {}): void {
  const files = Object.entries(arrays).map(([name, a]) => ({ name: `${name}.npy`, data: serializeNpy(a.shape, a.data) }));
  writeFileAtomic(file, serializeZip(files, opts));
}
