import { tf, Tensor4D } from '../../src/backend';
import { FIDInceptionV3 } from '../../src/models/inception/fidInception';
import { InceptionExtractor } from '../../src/eval/featureExtractor';
import { ImageU8 } from '../../src/eval/imageResize';
import { rngFor } from '../../src/nn/random';
import { mapSource } from '../../src/nn';
import { useTestBackend } from '../helpers';

function randomImage(seed: number, width: number, height: number): ImageU8 {
  const u = rngFor(seed, 'image').uniformArray(width * height * 3, 0, 256);
  return { data: Uint8Array.from(u, Math.floor), width, height, channels: 3 };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
}

/**
 * Cheap stand-in weights (drawing 24M seeded normals takes seconds): each convolution repeats a short
 * seeded pattern scaled by He's factor; batch norms are the identity.
 */
function patternWeights(model: FIDInceptionV3): void {
  const pattern = rngFor(5, 'pattern').normalArray(1009);
  const map = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [key, p] of model.namedParameters()) {
    const shape = p.torchShape;
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (key.endsWith('.conv.weight')) {
      const scale = Math.sqrt(2 / (n / shape[0]));
      data = Float32Array.from({ length: n }, (_, i) => pattern[i % 1009] * scale);
    } else {
      data = new Float32Array(n).fill(/\.(weight|running_var)$/.test(key) ? 1 : 0);
    }
    map.set(key, { shape, data });
  }
  model.loadStateDict(mapSource(map), { sourceName: 'pattern weights' });
}

describe('Inception feature extractor (stand-in weights)', () => {
  let model: FIDInceptionV3;
  beforeAll(async () => {
    await useTestBackend();
    model = new FIDInceptionV3();
    patternWeights(model);
  });
  afterAll(() => model.dispose());

  test('uint8 images of mixed sizes: each is read as [0, 1] and resized on its own, as pytorch-fid does', () => {
    const ex = new InceptionExtractor(model, 'pattern-5');
    expect(ex.identity).toBe('inception-fid/pool3/bilinear299/pattern-5');
    const a = randomImage(1, 40, 30);
    const b = randomImage(2, 20, 20);
    const before = tf.memory().numTensors;
    const both = ex.extract([a, b]).features;
    expect(tf.memory().numTensors).toBe(before);
    expect(both.length).toBe(2 * 2048);
    // Image a alone, through the network's own input step (bilinear to 299, half-pixel centres).
    const direct = tf.tidy(() => model.forward(tf.tensor4d(Float32Array.from(a.data, (v) => v / 255), [1, 30, 40, 3]) as Tensor4D));
    const aDirect = direct.dataSync() as Float32Array;
    direct.dispose();
    expect(maxRelDiff(both.subarray(0, 2048), aDirect)).toBeLessThan(1e-4);
    // Rows are per image: b (a different size in the same batch) gives features of its own.
    expect(maxRelDiff(both.subarray(2048), both.subarray(0, 2048))).toBeGreaterThan(1e-3);
    expect(() => ex.extract([{ data: new Uint8Array(12), width: 2, height: 2, channels: 3 }, { ...b, channels: 1 }])).toThrow(/expected an 8-bit RGB image, got 20x20x1/);
  }, 120000);
});
