/**
 * AutoencoderDC behaviour beyond golden parity: input validation, memory discipline (no leaks with or
 * without gradients), tiled vs untiled decoding, and peak memory of tiled decoding.
 */
import * as path from 'path';
import { tf } from '../../../src/backend';
import { loadCase } from '../../../src/golden/case';
import { toFloat32 } from '../../../src/io/safetensors';
import { loadAutoencoderDC } from '../../../src/io/pretrained/autoencoder';
import { AutoencoderDC, nchwToNhwc } from '../../../src/models/dcae';
import { rngFor, valueAndGrads } from '../../../src/nn';
import { GOLDEN_DIR, expectNoLeak, useTestBackend } from '../../helpers';

const tiledCase = loadCase(path.join(GOLDEN_DIR, 'dc_ae_tiled'));
const tiling = {
  tileSampleMinHeight: tiledCase.spec.tiling.settings.tile_sample_min_height,
  tileSampleMinWidth: tiledCase.spec.tiling.settings.tile_sample_min_width,
  tileSampleStrideHeight: tiledCase.spec.tiling.settings.tile_sample_stride_height,
  tileSampleStrideWidth: tiledCase.spec.tiling.settings.tile_sample_stride_width,
};
let model: AutoencoderDC;

function ioNhwc(name: string): tf.Tensor4D {
  const t = tiledCase.io.get(name)!;
  return tf.tidy(() => nchwToNhwc(tf.tensor4d(toFloat32(t, name), t.shape as [number, number, number, number])));
}

beforeAll(async () => {
  await useTestBackend();
  model = loadAutoencoderDC(tiledCase.file('model.safetensors'), { config: tiledCase.config! });
});
afterAll(() => model.dispose());

describe('input validation', () => {
  test('wrong channel count, with a hint when the tensor looks NCHW', () => {
    const nchw = tf.zeros([1, 3, 64, 64]) as tf.Tensor4D;
    expect(() => model.encode(nchw)).toThrow(/AutoencoderDC.encode: images must have 3 channels on the last axis \(NHWC\), got shape \[1,3,64,64\] \(is it NCHW\?/);
    const z = tf.zeros([1, 2, 2, 4]) as tf.Tensor4D;
    expect(() => model.decode(z)).toThrow(/AutoencoderDC.decode: latents must have 8 channels on the last axis/);
    tf.dispose([nchw, z]);
  });

  test('size not divisible by the compression ratio', () => {
    const x = tf.zeros([1, 48, 64, 3]) as tf.Tensor4D;
    expect(() => model.encode(x)).toThrow(/height and width must be multiples of the compression ratio 32, got 48x64/);
    x.dispose();
  });

  test('NaN or infinite values', () => {
    const x = tf.tidy(() => tf.zeros([1, 32, 32, 3]).add(tf.scalar(NaN).reshape([1, 1, 1, 1]).pad([[0, 0], [5, 26], [7, 24], [1, 1]]))) as tf.Tensor4D;
    expect(() => model.encode(x)).toThrow(/AutoencoderDC.encode: images contain NaN or infinite values/);
    const z = tf.fill([1, 1, 1, 8], Infinity) as tf.Tensor4D;
    expect(() => model.decode(z)).toThrow(/latents contain NaN or infinite values/);
    tf.dispose([x, z]);
  });

  test('wrong rank and dtype', () => {
    const x = tf.zeros([32, 32, 3]);
    expect(() => model.encode(x as unknown as tf.Tensor4D)).toThrow(/images must be NHWC \[B, H, W, 3\], got shape \[32,32,3\]/);
    const i = tf.zeros([1, 32, 32, 3], 'int32') as tf.Tensor4D;
    expect(() => model.encode(i)).toThrow(/images must be float32, got int32/);
    tf.dispose([x, i]);
  });
});

describe('memory', () => {
  test('encode and decode leak nothing', async () => {
    const x = tf.randomUniform([1, 64, 64, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    await expectNoLeak(() => {
      const z = model.encode(x);
      model.decode(z).dispose();
      z.dispose();
    }, 2);
    x.dispose();
  });

  test('a gradient step through encoder and decoder leaks nothing', async () => {
    const x = tf.randomUniform([1, 32, 32, 3], -1, 1, 'float32', 6) as tf.Tensor4D;
    const params = model.trainableParameters();
    await expectNoLeak(() => {
      const { value, grads } = valueAndGrads(() => tf.tidy(() => model.decode(model.encode(x)).sub(x).square().mean() as tf.Scalar), params);
      expect(grads.size).toBe(params.length);
      value.dispose();
      tf.dispose([...grads.values()]);
    }, 1);
    x.dispose();
  });

  test('tiled encode and decode leak nothing', async () => {
    const z = ioNhwc('latent');
    const x = ioNhwc('image');
    await expectNoLeak(() => {
      model.decodeTiled(z, tiling).dispose();
      model.encodeTiled(x, tiling).dispose();
    }, 1);
    tf.dispose([z, x]);
  });
});

describe('tiled decoding', () => {
  test('differs from the untiled decode exactly as much as the reference blending does', () => {
    const z = ioNhwc('latent');
    const full = model.decode(z);
    const tiled = model.decodeTiled(z, tiling);
    const refFull = ioNhwc('decoded_full');
    // Our untiled decode is the reference's; our tiled-vs-untiled gap is the reference's own gap.
    expect(full.sub(refFull).abs().max().dataSync()[0]).toBeLessThan(5e-4);
    const gap = tiled.sub(full).abs().max().dataSync()[0];
    expect(Math.abs(gap - tiledCase.spec.summary.max_abs_diff_tiled_vs_full_decode)).toBeLessThan(1e-3);
    tf.dispose([z, full, tiled, refFull]);
  });

  test('latents no larger than one tile decode whole', () => {
    const z = tf.randomNormal([1, 3, 3, 8], 0, 1, 'float32', 4) as tf.Tensor4D;
    const a = model.decode(z);
    const b = model.decodeTiled(z, tiling);
    expect(b.sub(a).abs().max().dataSync()[0]).toBe(0);
    tf.dispose([z, a, b]);
  });

  test('peak memory follows the tile, not the image', async () => {
    // Peak tensor bytes allocated by one decode of a latent `rows` x 2 (one column of tiles), and the
    // bytes of its output.
    const peak = async (rows: number, tiled: boolean) => {
      const z = tf.tensor4d(rngFor(0, 'dcae-peak', rows).normalArray(rows * 2 * 8), [1, rows, 2, 8]);
      let outBytes = 0;
      const before = tf.memory().numBytes; // weights and the latent
      const info = await tf.profile(() => {
        const out = tiled ? model.decodeTiled(z, tiling) : model.decode(z);
        outBytes = out.size * 4;
        out.dispose();
      });
      z.dispose();
      return { peak: info.peakBytes - before, out: outBytes };
    };
    const [smallTiled, bigTiled, smallFull, bigFull] = [await peak(4, true), await peak(10, true), await peak(4, false), await peak(10, false)];
    // Untiled, the activations beyond the output grow with the image (2.5x the pixels here).
    expect(bigFull.peak - bigFull.out).toBeGreaterThan(2 * (smallFull.peak - smallFull.out));
    // Tiled, the peak is the output image, the kept rows being joined into it (one more image), and
    // one tile's activations, which do not depend on the image size.
    const tileWork = (p: { peak: number; out: number }) => p.peak - 2 * p.out;
    expect(tileWork(bigTiled)).toBeLessThanOrEqual(tileWork(smallTiled) * 1.05 + 64 * 1024);
    expect(bigTiled.peak).toBeLessThan(bigFull.peak / 2);
  });
});
