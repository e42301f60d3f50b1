/**
 * Tiled vs untiled AutoencoderDC decoding, printed as JSON: for latents of growing size, the largest
 * difference between the tiled and the untiled image and the peak tensor memory of each (tf.profile's
 * `peakBytes`, which counts every live tensor, including the output image). With tiling, the memory
 * beyond the output itself stays at the size of one tile's activations; without it, it grows with the
 * image.
 *
 * The model is the `dc_ae_tiny` golden case (the f32c32-sana-1.0 stage layout at 1/32 width, ratio 32),
 * so the sizes stay small enough for a CPU; the ratio and the tiling arithmetic are those of the real
 * model. Latents are seeded standard normals.
 *
 *   node bin/run-ts.js scripts/measure-tiling.ts [--sizes 4,8,16,32,128] [--tile 256 --stride 192] [--backend NAME]
 */
import * as path from 'path';
import { tf, initBackend } from '../src/backend';
import { rngFor } from '../src/nn';
import { loadAutoencoderDC } from '../src/io/pretrained/autoencoder';
import { readJsonFile } from '../src/io/json';
import { AutoencoderDC, TilingOptions } from '../src/models/dcae';

const GOLDEN = path.resolve(__dirname, '..', '..', 'shared', 'golden', 'dc_ae_tiny');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

interface Run {
  peakBytes: number;
  outBytes: number;
  seconds: number;
  image: tf.Tensor4D;
}

async function decodeProfiled(model: AutoencoderDC, z: tf.Tensor4D, tiling: TilingOptions | null): Promise<Run> {
  let image: tf.Tensor4D | null = null;
  const before = tf.memory().numBytes;
  const t0 = Date.now();
  const info = await tf.profile(() => {
    image = tiling ? model.decodeTiled(z, tiling) : model.decode(z);
    return image;
  });
  const out = image as unknown as tf.Tensor4D;
  // Peak relative to what was alive before the call (the model weights and the latent).
  return { peakBytes: info.peakBytes - before, outBytes: out.size * 4, seconds: (Date.now() - t0) / 1000, image: out };
}

async function main(): Promise<void> {
  const backend = await initBackend(arg('backend', '') || undefined);
  const sizes = arg('sizes', '4,8,16,32').split(',').map(Number);
  const tile = Number(arg('tile', '128'));
  const stride = Number(arg('stride', '96'));
  const untiledUpTo = Number(arg('untiled-up-to', '32'));
  const tiling: TilingOptions = { tileSampleMinHeight: tile, tileSampleMinWidth: tile, tileSampleStrideHeight: stride, tileSampleStrideWidth: stride };
  const model = loadAutoencoderDC(path.join(GOLDEN, 'model.safetensors'), { config: readJsonFile(path.join(GOLDEN, 'config.json')) as Record<string, unknown> });
  const r = model.spatialCompressionRatio;
  const rows = [];
  for (const n of sizes) {
    const z = tf.tensor4d(rngFor(0, 'measure-tiling', n).normalArray(n * n * model.latentChannels), [1, n, n, model.latentChannels]);
    const tiled = await decodeProfiled(model, z, tiling);
    const row: Record<string, number | null> = {
      image_px: n * r,
      latent_px: n,
      tiled_peak_mib: tiled.peakBytes / 2 ** 20,
      tiled_peak_minus_output_mib: (tiled.peakBytes - tiled.outBytes) / 2 ** 20,
      tiled_seconds: tiled.seconds,
      untiled_peak_mib: null,
      untiled_peak_minus_output_mib: null,
      untiled_seconds: null,
      max_abs_diff_tiled_vs_untiled: null,
    };
    if (n <= untiledUpTo) {
      const full = await decodeProfiled(model, z, null);
      row.untiled_peak_mib = full.peakBytes / 2 ** 20;
      row.untiled_peak_minus_output_mib = (full.peakBytes - full.outBytes) / 2 ** 20;
      row.untiled_seconds = full.seconds;
      row.max_abs_diff_tiled_vs_untiled = tf.tidy(() => full.image.sub(tiled.image).abs().max().dataSync()[0]);
      full.image.dispose();
    }
    tiled.image.dispose();
    z.dispose();
    rows.push(row);
  }
  model.dispose();
  const result = {
    backend: backend.tfName,
    model: 'dc_ae_tiny golden weights (f32c32-sana-1.0 layout at 1/32 width, compression ratio 32)',
    tiling: { tile_sample_min: tile, tile_sample_stride: stride, blend_px: tile - stride },
    rows,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
