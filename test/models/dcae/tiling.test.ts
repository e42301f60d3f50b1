/** Tile geometry and blending follow diffusers' tiled_encode / tiled_decode / blend_v / blend_h. */
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../../src/backend';
import { blendEdge, resolveTiling, tiledDecode, tiledEncode } from '../../../src/models/dcae';
import { GOLDEN_DIR, expectNoLeak, useTestBackend } from '../../helpers';

beforeAll(useTestBackend);

const tiledCase = JSON.parse(fs.readFileSync(path.join(GOLDEN_DIR, 'dc_ae_tiled', 'case.json'), 'utf8'));
const settings = tiledCase.tiling.settings;
const geometry = () =>
  resolveTiling(
    {
      tileSampleMinHeight: settings.tile_sample_min_height,
      tileSampleMinWidth: settings.tile_sample_min_width,
      tileSampleStrideHeight: settings.tile_sample_stride_height,
      tileSampleStrideWidth: settings.tile_sample_stride_width,
    },
    tiledCase.tiling.spatial_compression_ratio,
  );

/** "(1, 8, 3, 2) -> (1, 3, 96, 64)" -> NHWC input and output shapes. */
function parseCall(s: string): [number[], number[]] {
  const [a, b] = s.split('->').map((p) => p.replace(/[() ]/g, '').split(',').map(Number));
  const nhwc = (t: number[]) => [t[0], t[2], t[3], t[1]];
  return [nhwc(a), nhwc(b)];
}

test('tiled decode calls the decoder on the same tiles as diffusers (edge tiles smaller, not padded)', () => {
  const g = geometry();
  expect(g.latentMin).toEqual(tiledCase.tiling.decode.tile_latent_min);
  expect(g.latentStride).toEqual(tiledCase.tiling.decode.tile_latent_stride);
  const calls: number[][] = [];
  const expected = (tiledCase.tiling.decode['decoder_calls (input shape -> output shape)'] as string[]).map(parseCall);
  const [b, , , c] = expected[0][0];
  const z = tf.zeros([b, 4, 6, c]) as tf.Tensor4D;
  // A stand-in decoder: records its input, returns ones of the up-sampled size.
  const out = tiledDecode(z, (t) => (calls.push(t.shape), tf.ones([t.shape[0], t.shape[1] * 32, t.shape[2] * 32, 3]) as tf.Tensor4D), g);
  expect(calls).toEqual(expected.map(([input]) => input));
  expect(out.shape).toEqual([b, 128, 192, 3]);
  // Blending ones with ones is exact: the seams hold no artefacts.
  expect(out.min().dataSync()[0]).toBe(1);
  expect(out.max().dataSync()[0]).toBe(1);
  tf.dispose([z, out]);
});

test('tiled encode pads edge tiles to the ratio and crops the result to floor(H/r) x floor(W/r)', () => {
  const g = geometry();
  const calls: number[][] = [];
  const expected = (tiledCase.tiling.encode['encoder_calls (input shape -> output shape)'] as string[]).map(parseCall);
  const x = tf.zeros([1, 128, 192, 3]) as tf.Tensor4D;
  const encode = (t: tf.Tensor4D) => (calls.push(t.shape), tf.ones([t.shape[0], t.shape[1] / 32, t.shape[2] / 32, 8]) as tf.Tensor4D);
  const out = tiledEncode(x, encode, g);
  expect(calls).toEqual(expected.map(([input]) => input));
  expect(out.shape).toEqual([1, 4, 6, 8]);
  // 100 rows is not a multiple of the ratio: the bottom tiles (36 rows) are zero-padded to 64 and the
  // latent is cropped to floor(100/32) = 3 rows; tiles also start at column 64 although 96 fits in one.
  calls.length = 0;
  const odd = tf.zeros([1, 100, 96, 3]) as tf.Tensor4D;
  const small = tiledEncode(odd, encode, g);
  expect(calls).toEqual([[1, 96, 96, 3], [1, 96, 32, 3], [1, 64, 96, 3], [1, 64, 32, 3]]);
  expect(small.shape).toEqual([1, 3, 3, 8]);
  tf.dispose([x, out, odd, small]);
});

test('blendEdge equals the reference loop b[y] = a[-e+y] * (1 - y/e) + b[y] * (y/e)', () => {
  for (const axis of [1, 2] as const) {
    // Neighbours share the other axis (same column for blend_v, same row for blend_h).
    const a = tf.randomNormal(axis === 1 ? [2, 5, 6, 3] : [2, 4, 7, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const b = tf.randomNormal([2, 4, 6, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const got = blendEdge(a, b, 3, axis);
    const e = 3;
    const A = a.arraySync();
    const B = b.arraySync();
    for (let n = 0; n < 2; n++)
      for (let y = 0; y < 4; y++)
        for (let x = 0; x < 6; x++)
          for (let c = 0; c < 3; c++) {
            const k = axis === 1 ? y : x;
            if (k >= e) continue;
            const av = axis === 1 ? A[n][a.shape[1] - e + y][x][c] : A[n][y][a.shape[2] - e + x][c];
            B[n][y][x][c] = av * (1 - k / e) + B[n][y][x][c] * (k / e);
          }
    const ref = tf.tensor4d(B);
    expect(tf.abs(got.sub(ref)).max().dataSync()[0]).toBeLessThan(1e-6);
    // The extent is capped by the smaller tile: a 2-long b is blended over 2, not 3.
    const short = axis === 1 ? b.slice([0, 0, 0, 0], [2, 2, 6, 3]) : b.slice([0, 0, 0, 0], [2, 4, 2, 3]);
    const capped = blendEdge(a, short, 3, axis);
    expect(capped.shape).toEqual(short.shape);
    // With e = 2, row 0 is a's row -2 exactly (weight 1 - 0/2 on a, 0 on b).
    const first = axis === 1 ? capped.slice([0, 0, 0, 0], [2, 1, 6, 3]) : capped.slice([0, 0, 0, 0], [2, 4, 1, 3]);
    const fromA = axis === 1 ? a.slice([0, a.shape[1] - 2, 0, 0], [2, 1, 6, 3]) : a.slice([0, 0, a.shape[2] - 2, 0], [2, 4, 1, 3]);
    expect(first.sub(fromA).abs().max().dataSync()[0]).toBe(0);
    tf.dispose([short, first, fromA]);
    tf.dispose([a, b, got, ref, capped]);
  }
});

test('tiling settings are validated', () => {
  expect(() => resolveTiling({ tileSampleStrideHeight: 48 }, 32)).toThrow(/tileSampleStrideHeight \(48\) must be a multiple of the compression ratio 32/);
  expect(() => resolveTiling({ tileSampleMinWidth: 256, tileSampleStrideWidth: 288 }, 32)).toThrow(/tileSampleMinWidth \(256\) must be at least tileSampleStrideWidth \(288\)/);
  expect(() => resolveTiling({ tileSampleMinHeight: -1 }, 32)).toThrow(/tileSampleMinHeight must be a positive integer/);
  expect(resolveTiling(undefined, 32)).toEqual({ ratio: 32, sampleMin: [512, 512], sampleStride: [448, 448], latentMin: [16, 16], latentStride: [14, 14] });
});

test('tiled decode leaks nothing', async () => {
  const g = geometry();
  const z = tf.zeros([1, 4, 6, 8]) as tf.Tensor4D;
  await expectNoLeak(() => {
    tiledDecode(z, (t) => tf.tidy(() => t.mean(3, true).add(1).tile([1, 32, 32, 3]) as tf.Tensor4D), g).dispose();
  });
  z.dispose();
});
