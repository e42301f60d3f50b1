import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseNpy, readNpz, serializeNpy, writeNpz } from '../../src/io/npz';
import { readFidStats, writeFidStats } from '../../src/eval/fid';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'npz');
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as {
  mixed: Record<string, { shape: number[]; values: number[] }>;
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sana-npz-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const values = (a: ArrayLike<number | bigint>): number[] => Array.from(a, (v) => Number(v));

describe('.npz written by NumPy', () => {
  test('np.savez_compressed of several dtypes, a Fortran-ordered and a 0-d array', () => {
    const arrays = readNpz(path.join(FIX, 'mixed.npz'));
    expect([...arrays.keys()].sort()).toEqual(Object.keys(expected.mixed).sort());
    for (const [name, want] of Object.entries(expected.mixed)) {
      const got = arrays.get(name)!;
      expect({ name, shape: got.shape, values: values(got.data) }).toEqual({ name, shape: want.shape, values: want.values });
    }
    expect(arrays.get('f4')!.dtype).toBe('f4');
    expect(arrays.get('i8')!.dtype).toBe('i8');
  });

  test('pytorch-fid statistics (np.savez of float64 mu and sigma)', () => {
    const s = readFidStats(path.join(FIX, 'stats_a.npz'));
    expect(s.dim).toBe(16);
    expect(s.mu.length).toBe(16);
    expect(s.sigma.length).toBe(256);
    expect(s.count).toBe(0);
    // A covariance is symmetric.
    for (let i = 0; i < 16; i++) for (let j = 0; j < 16; j++) expect(s.sigma[i * 16 + j]).toBe(s.sigma[j * 16 + i]);
  });
});

describe('round trip', () => {
  test.each([false, true])('writeNpz -> readNpz keeps dtype, shape and bits (compress %s)', (compress) => {
    const file = path.join(tmp, `rt-${compress}.npz`);
    const arrays = {
      f8: { shape: [2, 2], data: Float64Array.from([Math.PI, -0, 1e-300, Number.MAX_VALUE]) },
      f4: { shape: [3], data: Float32Array.from([0.1, -2.5, 3e38]) },
      i4: { shape: [1, 3], data: Int32Array.from([-1, 0, 2 ** 31 - 1]) },
      i8: { shape: [], data: BigInt64Array.from([BigInt(-(2 ** 53))]) },
      u1: { shape: [2], data: Uint8Array.from([0, 255]) },
    };
    writeNpz(file, arrays, { compress });
    const back = readNpz(file);
    for (const [name, a] of Object.entries(arrays)) {
      const got = back.get(name)!;
      expect({ name, shape: got.shape }).toEqual({ name, shape: a.shape });
      expect(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(Buffer.from(a.data.buffer))).toBe(true);
    }
  });

  test('FID statistics written by writeFidStats read back identically (with the image count)', () => {
    const d = 5;
    const mu = Float64Array.from({ length: d }, (_, i) => i / 3);
    const sigma = Float64Array.from({ length: d * d }, (_, k) => (Math.floor(k / d) === k % d ? 1 + k / 7 : 0.1));
    const file = path.join(tmp, 'stats.npz');
    writeFidStats(file, { mu, sigma, dim: d, count: 123 });
    const s = readFidStats(file);
    expect(Array.from(s.mu)).toEqual(Array.from(mu));
    expect(Array.from(s.sigma)).toEqual(Array.from(sigma));
    expect(s.count).toBe(123);
  });

  test('the .npy header is padded to 64 bytes as NumPy writes it', () => {
    const bytes = serializeNpy([2, 3], new Float32Array(6));
    const headerLen = bytes.readUInt16LE(8);
    expect((10 + headerLen) % 64).toBe(0);
    expect(bytes.subarray(10, 10 + headerLen).toString('latin1')).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \}\s+\n$/);
    expect(parseNpy(bytes).shape).toEqual([2, 3]);
  });
});

describe('errors name the file and the problem', () => {
  test('statistics without sigma, or with a mis-shaped sigma', () => {
    const noSigma = path.join(tmp, 'nosigma.npz');
    writeNpz(noSigma, { mu: { shape: [3], data: new Float64Array(3) } });
    expect(() => readFidStats(noSigma)).toThrow(/nosigma\.npz: FID statistics need arrays "mu" and "sigma" \(found: mu\)/);
    const bad = path.join(tmp, 'bad.npz');
    writeNpz(bad, { mu: { shape: [3], data: new Float64Array(3) }, sigma: { shape: [2, 2], data: new Float64Array(4) } });
    expect(() => readFidStats(bad)).toThrow(/bad\.npz: "sigma" must be \(3, 3\) to match "mu", got \(2,2\)/);
  });

  test('a truncated array', () => {
    const bytes = serializeNpy([4], new Float64Array(4));
    expect(() => parseNpy(bytes.subarray(0, bytes.length - 8), 'x.npy')).toThrow(/x\.npy: 24 data bytes .*expected 32; truncated/);
  });
});
