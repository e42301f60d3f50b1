import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PthCheckpoint, PthError, PthFile, PthTensor } from '../../src/io/pth';
import { PickleError, BufferSource, unpickle } from '../../src/io/pickle';
import { ZipReader } from '../../src/io/zip';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'pth');
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as {
  tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
  marker: string;
  big_numel: number;
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-pth-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TORCH_DTYPE: Record<string, string> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', bool: 'BOOL', uint8: 'U8',
};

describe.each(['small_zip.pth', 'small_zip_p4.pth', 'small_legacy.pth'])('%s (written by torch.save)', (name) => {
  let f: PthFile;
  beforeAll(() => {
    f = PthFile.open(path.join(FIX, name));
  });
  afterAll(() => f.close());

  test('every tensor has the dtype, shape and values torch saved', () => {
    const tensors = f.tensors();
    expect([...tensors.keys()].sort()).toEqual(Object.keys(expected.tensors).sort());
    for (const [key, want] of Object.entries(expected.tensors)) {
      const t = tensors.get(key)!;
      expect({ key, dtype: t.dtype }).toEqual({ key, dtype: TORCH_DTYPE[want.dtype] });
      expect(t.shape).toEqual(want.shape);
      const got = Array.from(t.read().data as ArrayLike<number | bigint>, (v) => Number(v));
      expect({ key, values: got }).toEqual({ key, values: want.values });
    }
  });

  test('plain Python values come through', () => {
    const root = f.root as Map<string, unknown>;
    expect(root.get('epoch')).toBe(3);
    expect(root.get('step')).toBe(2 ** 33);
    expect(root.get('lr')).toBe(1e-4);
    expect(root.get('name')).toBe('tiny');
    expect(root.get('sizes')).toEqual([1, 2, 3]);
    expect(root.get('flags')).toEqual([true, false, null]);
  });

  test('a checkpoint with a state_dict entry is selected by PthCheckpoint', () => {
    const ck = PthCheckpoint.open(path.join(FIX, name));
    try {
      expect(ck.keys()).toContain('conv.weight');
      expect(ck.info('conv.weight').shape).toEqual([4, 3, 3, 3]);
      expect(Array.from(ck.readFloat32('conv.weight'))).toEqual(expected.tensors['state_dict.conv.weight'].values.map(Math.fround));
      expect(() => ck.read('nope')).toThrow(/no tensor named "nope"/);
    } finally {
      ck.close();
    }
    const ema = PthCheckpoint.open(path.join(FIX, name), 'ema');
    expect(ema.keys()).toEqual(['nested.weight']);
    ema.close();
    expect(() => PthCheckpoint.open(path.join(FIX, name), 'missing')).toThrow(/no "missing" in the checkpoint \(top-level keys: state_dict, ema, epoch/);
  });
});

describe('malicious pickles are refused and never run', () => {
  beforeAll(() => fs.rmSync(expected.marker, { force: true }));

  test.each(['malicious_zip.pth', 'malicious_legacy.pth'])('%s asking for os.system', (name) => {
    expect(() => PthFile.open(path.join(FIX, name))).toThrow(/refuses to load "posix\.system"|refuses to load "os\.system"/);
    expect(fs.existsSync(expected.marker)).toBe(false);
  });

  test('a bare pickle calling builtins.eval', () => {
    const bytes = fs.readFileSync(path.join(FIX, 'malicious_eval.pkl'));
    const run = () => unpickle(new BufferSource(bytes, 'malicious_eval.pkl'), { source: 'malicious_eval.pkl', resolveGlobal: () => null });
    expect(run).toThrow(PickleError);
    expect(run).toThrow(/malicious_eval\.pkl: refuses to load "(__builtin__|builtins)\.eval"/);
    expect(fs.existsSync(expected.marker)).toBe(false);
  });

  test('unknown opcodes and truncation are clear errors', () => {
    const opts = { source: 'x.pkl', resolveGlobal: () => null };
    expect(() => unpickle(new BufferSource(Buffer.from([0x80, 0x02, 0x82, 0x01]), 'x.pkl'), opts)).toThrow(/opcode EXT1 at offset 2 is not supported/);
    expect(() => unpickle(new BufferSource(Buffer.from([0x80, 0x02, 0x4e]), 'x.pkl'), opts)).toThrow(/ends without STOP/);
  });

  test('a file that is neither format', () => {
    const junk = path.join(tmp, 'junk.pth');
    fs.writeFileSync(junk, 'hello world, not a checkpoint');
    expect(() => PthFile.open(junk)).toThrow(PthError);
    expect(() => PthFile.open(junk)).toThrow(/junk\.pth: not a PyTorch checkpoint/);
    expect(() => PthFile.open(path.join(tmp, 'absent.pth'))).toThrow(/absent\.pth: no such file/);
  });
});

/**
 * Writes a sparse ZIP64 torch archive: `big/data.pkl` (the fixture pickle of one float32 tensor of
 * `numel` elements) and `big/data/0`, whose bytes are a hole except `tail` written at its very end.
 */
function writeSparseTorchZip(file: string, pkl: Buffer, numel: number, tail: Float32Array): void {
  const fd = fs.openSync(file, 'w');
  let pos = 0;
  const write = (b: Buffer) => {
    fs.writeSync(fd, b, 0, b.length, pos);
    pos += b.length;
  };
  const entries: Array<{ name: Buffer; size: number; offset: number }> = [];
  const local = (name: string, size: number, body: (() => void)) => {
    const n = Buffer.from(name);
    const h = Buffer.alloc(30 + n.length + 20);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(45, 4);
    h.writeUInt32LE(0xffffffff, 18);
    h.writeUInt32LE(0xffffffff, 22);
    h.writeUInt16LE(n.length, 26);
    h.writeUInt16LE(20, 28);
    n.copy(h, 30);
    h.writeUInt16LE(1, 30 + n.length);
    h.writeUInt16LE(16, 32 + n.length);
    h.writeBigUInt64LE(BigInt(size), 34 + n.length);
    h.writeBigUInt64LE(BigInt(size), 42 + n.length);
    entries.push({ name: n, size, offset: pos });
    write(h);
    body();
  };
  local('big/data.pkl', pkl.length, () => write(pkl));
  const bytes = numel * 4;
  local('big/data/0', bytes, () => {
    const t = Buffer.from(tail.buffer);
    fs.writeSync(fd, t, 0, t.length, pos + bytes - t.length);
    pos += bytes;
  });
  const cdStart = pos;
  for (const e of entries) {
    const c = Buffer.alloc(46 + e.name.length + 28);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(45, 4);
    c.writeUInt16LE(45, 6);
    c.writeUInt32LE(0xffffffff, 20);
    c.writeUInt32LE(0xffffffff, 24);
    c.writeUInt16LE(e.name.length, 28);
    c.writeUInt16LE(28, 30);
    c.writeUInt32LE(0xffffffff, 42);
    e.name.copy(c, 46);
    const x = 46 + e.name.length;
    c.writeUInt16LE(1, x);
    c.writeUInt16LE(24, x + 2);
    c.writeBigUInt64LE(BigInt(e.size), x + 4);
    c.writeBigUInt64LE(BigInt(e.size), x + 12);
    c.writeBigUInt64LE(BigInt(e.offset), x + 20);
    write(c);
  }
  const cdSize = pos - cdStart;
  const z64 = Buffer.alloc(56);
  z64.writeUInt32LE(0x06064b50, 0);
  z64.writeBigUInt64LE(44n, 4);
  z64.writeUInt16LE(45, 12);
  z64.writeUInt16LE(45, 14);
  z64.writeBigUInt64LE(BigInt(entries.length), 24);
  z64.writeBigUInt64LE(BigInt(entries.length), 32);
  z64.writeBigUInt64LE(BigInt(cdSize), 40);
  z64.writeBigUInt64LE(BigInt(cdStart), 48);
  const z64Pos = pos;
  write(z64);
  const loc = Buffer.alloc(20);
  loc.writeUInt32LE(0x07064b50, 0);
  loc.writeBigUInt64LE(BigInt(z64Pos), 8);
  loc.writeUInt32LE(1, 16);
  write(loc);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(0xffff, 8);
  eocd.writeUInt16LE(0xffff, 10);
  eocd.writeUInt32LE(0xffffffff, 12);
  eocd.writeUInt32LE(0xffffffff, 16);
  write(eocd);
  fs.closeSync(fd);
}

describe('a multi-GB checkpoint is read lazily', () => {
  test('opening reads only the pickle; a tensor slice is read at its offset', () => {
    const file = path.join(tmp, 'big.pth');
    const numel = expected.big_numel;
    const tail = new Float32Array([1.5, -2.25, 3.125, 42]);
    writeSparseTorchZip(file, fs.readFileSync(path.join(FIX, 'big_tensor_data.pkl')), numel, tail);
    expect(fs.statSync(file).size).toBeGreaterThan(4 * 2 ** 30);

    const rssBefore = process.memoryUsage().rss;
    const t0 = Date.now();
    const f = PthFile.open(file);
    try {
      const big = f.tensors().get('big') as PthTensor;
      expect(big.shape).toEqual([numel]);
      expect(big.dtype).toBe('F32');
      // The archive needs ZIP64 for the entry size and offsets; the reader resolved them.
      const zip = ZipReader.open(file);
      expect(zip.entry('big/data/0').uncompressedSize).toBe(numel * 4);
      zip.close();
      // A view over the last four elements (what a strided read of a huge tensor does).
      const view = new PthTensor(f, big.storage, numel - 4, [4], [1]);
      expect(Array.from(view.read().data as Float32Array)).toEqual(Array.from(tail));
      const head = new PthTensor(f, big.storage, 0, [2, 2], [2, 1]);
      expect(Array.from(head.read().data as Float32Array)).toEqual([0, 0, 0, 0]);
    } finally {
      f.close();
    }
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 2 ** 20);
  });
});
