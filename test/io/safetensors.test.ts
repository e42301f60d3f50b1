import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execSync } from 'child_process';
import {
  readSafetensors,
  serializeSafetensors,
  SafetensorsCheckpoint,
  SafetensorsError,
  SafetensorsFile,
  writeSafetensors,
} from '../../src/io/safetensors';
import { GOLDEN_DIR } from '../helpers';

function goldenFiles(): string[] {
  if (!fs.existsSync(GOLDEN_DIR)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.safetensors')) out.push(path.join(d, e.name));
    }
  };
  walk(GOLDEN_DIR);
  return out.sort();
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('safetensors on the golden files', () => {
  const files = goldenFiles();
  test('there are golden files', () => expect(files.length).toBeGreaterThan(10));
  test.each(files.map((f) => [path.relative(GOLDEN_DIR, f), f]))('%s loads and round-trips', (_name, file) => {
    const { tensors, metadata } = readSafetensors(file);
    expect(tensors.size).toBeGreaterThan(0);
    const out = path.join(tmp, 'rt.safetensors');
    writeSafetensors(out, tensors, metadata);
    const back = readSafetensors(out);
    for (const [k, t] of tensors) {
      const u = back.tensors.get(k)!;
      expect(u.shape).toEqual(t.shape);
      expect(u.dtype).toEqual(t.dtype);
      expect(Buffer.from(u.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
    }
    const allF32 = [...tensors.values()].every((t) => t.dtype === 'F32');
    if (allF32) expect(fs.readFileSync(out).equals(fs.readFileSync(file))).toBe(true);
  });
});

describe('dtypes', () => {
  test('F16 and BF16 are upcast to float32', () => {
    const vals = new Float32Array([0, 1, -2.5, 65504, 1e-3, -0.0078125]);
    const f = path.join(tmp, 'half.safetensors');
    writeSafetensors(f, { h: { dtype: 'F16', shape: [6], data: vals }, b: { dtype: 'BF16', shape: [2, 3], data: vals } });
    const r = readSafetensors(f).tensors;
    const h = r.get('h')!.data as Float32Array;
    const b = r.get('b')!.data as Float32Array;
    for (let i = 0; i < vals.length; i++) {
      expect(Math.abs(h[i] - vals[i])).toBeLessThanOrEqual(Math.abs(vals[i]) * 1e-3 + 1e-7);
      expect(Math.abs(b[i] - vals[i])).toBeLessThanOrEqual(Math.abs(vals[i]) * 8e-3);
    }
  });
  test('integer and bool dtypes keep their values', () => {
    const f = path.join(tmp, 'ints.safetensors');
    writeSafetensors(f, {
      i32: { dtype: 'I32', shape: [3], data: new Int32Array([-1, 0, 7]) },
      i64: { dtype: 'I64', shape: [2], data: new BigInt64Array([-5n, 1n << 40n]) },
      u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
      bool: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
    });
    const r = readSafetensors(f).tensors;
    expect([...(r.get('i32')!.data as Int32Array)]).toEqual([-1, 0, 7]);
    expect([...(r.get('i64')!.data as BigInt64Array)]).toEqual([-5n, 1n << 40n]);
    expect([...(r.get('u8')!.data as Uint8Array)]).toEqual([0, 255]);
    expect([...(r.get('bool')!.data as Uint8Array)]).toEqual([1, 0]);
  });
});

describe('sharded checkpoints', () => {
  test('an index over two shards reads every tensor from its shard', () => {
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir, { recursive: true });
    writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), { a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), { b: { dtype: 'BF16', shape: [1], data: new Float32Array([3]) } });
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
    const ck = SafetensorsCheckpoint.open(dir);
    expect(ck.keys().sort()).toEqual(['a', 'b']);
    expect([...ck.readFloat32('a')]).toEqual([1, 2]);
    expect([...ck.readFloat32('b')]).toEqual([3]);
    ck.close();
  });
  test('an index naming a tensor its shard lacks is an error naming the key', () => {
    const dir = path.join(tmp, 'badindex');
    fs.mkdirSync(dir, { recursive: true });
    writeSafetensors(path.join(dir, 's1.safetensors'), { a: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors', ghost: 's1.safetensors' } }));
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/ghost/);
  });
});

describe('large files are read tensor by tensor', () => {
  test('a 600 MB file: one small tensor is read without reading the rest', () => {
    const f = path.join(tmp, 'big.safetensors');
    // A sparse file: header describes a 600 MB tensor followed by a small one.
    const big = 150_000_000; // float32 elements
    const header = Buffer.from(JSON.stringify({ big: { dtype: 'F32', shape: [big], data_offsets: [0, big * 4] }, small: { dtype: 'F32', shape: [2], data_offsets: [big * 4, big * 4 + 8] } }));
    const padded = Buffer.concat([header, Buffer.alloc((8 - (header.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(padded.length));
    const fd = fs.openSync(f, 'w');
    fs.writeSync(fd, len);
    fs.writeSync(fd, padded);
    const tail = Buffer.alloc(8);
    tail.writeFloatLE(1.5, 0);
    tail.writeFloatLE(-2, 4);
    fs.writeSync(fd, tail, 0, 8, 8 + padded.length + big * 4);
    fs.closeSync(fd);
    const rssBefore = process.memoryUsage().rss;
    const file = SafetensorsFile.open(f);
    expect([...file.readFloat32('small')]).toEqual([1.5, -2]);
    file.close();
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100_000_000);
  });
});

describe('hostile and broken files', () => {
  const valid = Buffer.concat(serializeSafetensors({
    w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6).fill(1) },
    b: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n]) },
  }, { format: 'pt' }));

  function write(name: string, bytes: Buffer): string {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, bytes);
    return f;
  }
  function headerFile(name: string, header: unknown, dataBytes = 64): string {
    const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return write(name, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
  }

  const cases: Array<[string, () => string, RegExp]> = [
    ['empty file', () => write('empty.st', Buffer.alloc(0)), /shorter than the 8-byte/],
    ['truncated data', () => write('trunc.st', valid.subarray(0, valid.length - 5)), /past the end of the data/],
    ['header length past EOF', () => { const b = Buffer.from(valid); b.writeBigUInt64LE(BigInt(valid.length)); return write('hlen.st', b); }, /runs past the end/],
    ['huge header length', () => { const b = Buffer.from(valid); b.writeBigUInt64LE(1n << 60n); return write('huge.st', b); }, /exceeds the/],
    ['non-JSON header', () => headerFile('nonjson.st', '{"a": [1,2'), /not valid JSON/],
    ['header not an object', () => headerFile('arr.st', '[1,2,3]'), /JSON object/],
    ['unknown dtype', () => headerFile('dt.st', { a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }), /unknown dtype/],
    ['byte count vs shape', () => headerFile('cnt.st', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), /expected 12/],
    ['offsets out of range', () => headerFile('oor.st', { a: { dtype: 'F32', shape: [100], data_offsets: [0, 400] } }), /past the end/],
    ['overlapping tensors', () => headerFile('ovl.st', { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }), /overlap/],
    ['negative shape', () => headerFile('neg.st', { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }), /non-negative/],
    ['reversed offsets', () => headerFile('rev.st', { a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }), /end 4 < begin 8|expected 0/],
    ['bad metadata', () => headerFile('meta.st', { __metadata__: { a: 1 } }), /must be a string/],
    ['missing file', () => path.join(tmp, 'does-not-exist.st'), /cannot open/],
  ];
  test.each(cases)('%s gives a clear error naming the file', (_what, make, pattern) => {
    const f = make();
    let err: unknown;
    try {
      SafetensorsFile.open(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toContain(f);
    expect((err as Error).message).toMatch(pattern);
  });

  test('fuzz: 400 mutated files never crash, hang or allocate wildly', () => {
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    const heapBefore = process.memoryUsage().heapUsed;
    let rejected = 0;
    for (let i = 0; i < 400; i++) {
      const b = Buffer.from(valid);
      const kind = i % 4;
      if (kind === 0) for (let k = 0; k < 1 + Math.floor(rand() * 8); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      if (kind === 1) b.writeBigUInt64LE(BigInt(Math.floor(rand() * 2 ** 40)), 0);
      const bytes = kind === 2 ? b.subarray(0, Math.floor(rand() * b.length)) : kind === 3 ? Buffer.concat([b.subarray(0, 8 + Math.floor(rand() * 40)), Buffer.from('{"x":{"dtype":"F32","shape":[99999999999],"data_offsets":[0,4]}}')]) : b;
      const f = write(`fuzz${i}.st`, bytes);
      try {
        const file = SafetensorsFile.open(f);
        for (const k of file.keys()) file.read(k);
        file.close();
      } catch (e) {
        expect(e).toBeInstanceOf(SafetensorsError);
        rejected++;
      }
      fs.rmSync(f);
    }
    expect(rejected).toBeGreaterThan(100);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(200_000_000);
  });
});

test('the checkpoint reader names the folder when it has no weights', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'empty-'));
  expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/no weights found/);
  void execSync;
});
