/**
 * Golden runner for the FID Inception case: the network with weights generated from the case's
 * documented recipe (under the real checkpoint's state-dict keys), the resize/scale step, the block
 * statistics and the pool3 features.
 */
import { tf, Tensor4D } from '../../backend';
import { GoldenRunner, caseKind } from '../runner';
import { ioTensor } from '../case';
import { CheckResult, Tolerance, check, compareTensor } from '../compare';
import { mapSource } from '../../nn';
import { FIDInceptionV3 } from '../../models/inception/fidInception';

const FALLBACK: Tolerance = { metric: 'allclose', atol: 1e-3, rtol: 1e-3 };

/** FNV-1a 32-bit hash of the UTF-8 bytes of `s`. */
function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The recipe's uniform stream in [-1, 1) for `key`, element `j` (a murmur3-style finaliser). */
export function recipeUniform(key: string, n: number): Float64Array {
  const seed = fnv1a32(key);
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let h = (seed + (Math.imul(j, 0x9e3779b1) >>> 0)) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0; // XOR yields a signed int32: back to unsigned
    out[j] = (2 * h) / 2 ** 32 - 1;
  }
  return out;
}

/** Value of one recipe weight (PyTorch layout, C order) from its key and shape; null for unknown kinds. */
export function recipeWeight(key: string, shape: readonly number[]): Float32Array | null {
  const n = shape.reduce((a, b) => a * b, 1);
  const u = recipeUniform(key, n);
  const f = (g: (x: number) => number) => Float32Array.from(u, (x) => Math.fround(g(x)));
  if (/\.conv\.weight$/.test(key) || key === 'fc.weight') {
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const bound = Math.sqrt((key === 'fc.weight' ? 3 : 6) / fanIn);
    return f((x) => x * bound);
  }
  if (/\.bn\.weight$/.test(key)) return f((x) => 1 + 0.1 * x);
  if (/\.bn\.bias$/.test(key) || /\.bn\.running_mean$/.test(key)) return f((x) => 0.1 * x);
  if (/\.bn\.running_var$/.test(key)) return f((x) => 1 + 0.25 * x);
  if (key === 'fc.bias') return new Float32Array(n);
  return null;
}

/** Fills every parameter of `model` from the recipe. */
export function loadRecipeWeights(model: FIDInceptionV3): void {
  const map = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [key, p] of model.namedParameters()) {
    const data = recipeWeight(key, p.torchShape);
    if (!data) throw new Error(`inception recipe: no rule for parameter ${key}`);
    map.set(key, { shape: p.torchShape, data });
  }
  model.loadStateDict(mapSource(map), { sourceName: 'weights recipe' });
}

/** NHWC host data -> NCHW. */
function toNchw(data: Float32Array, [b, h, w, c]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let n = 0; n < b; n++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) {
    out[((n * c + k) * h + y) * w + x] = data[((n * h + y) * w + x) * c + k];
  }
  return out;
}

export const inceptionRunner: GoldenRunner = {
  id: 'inception_fid',
  matches: (c) => /Inception/i.test(caseKind(c)),
  run: async (c) => {
    const images = ioTensor(c, 'images'); // [B, 3, H, W] in [0, 1]
    const [b, ch, h, w] = images.shape;
    const model = new FIDInceptionV3();
    try {
      loadRecipeWeights(model);
      const out = tf.tidy(() => {
        const x = tf.tensor4d(images.data as Float32Array, [b, ch, h, w]).transpose([0, 2, 3, 1]) as Tensor4D;
        const r = model.run(x, { keepIntermediates: true });
        return {
          pool3: r.pool3.dataSync() as Float32Array,
          pre: { data: r.preprocessed!.dataSync() as Float32Array, shape: r.preprocessed!.shape },
          blocks: r.blocks!.map((t) => ({ mean: t.mean([1, 2]).dataSync() as Float32Array, shape: [t.shape[0], t.shape[3], t.shape[1], t.shape[2]] })),
        };
      });
      const results: CheckResult[] = [];
      const cmp = (k: string, got: ArrayLike<number>, shape?: number[]) => {
        if (c.io.has(k)) results.push(check(c.spec, k, got, ioTensor(c, k), FALLBACK, shape));
      };
      const [pb, ph, pw, pc] = out.pre.shape;
      cmp('preprocessed', toNchw(out.pre.data, out.pre.shape), [pb, pc, ph, pw]);
      out.blocks.forEach((blk, i) => {
        const shapeKey = `debug.block${i}.shape`;
        if (c.io.has(shapeKey)) results.push(compareTensor(shapeKey, blk.shape, ioTensor(c, shapeKey), { metric: 'exact', atol: 0, rtol: 0 }));
        cmp(`debug.block${i}.channel_mean`, blk.mean);
      });
      cmp('pool3', out.pool3, [b, FIDInceptionV3.FEATURE_DIM]);
      return results;
    } finally {
      model.dispose();
    }
  },
};
