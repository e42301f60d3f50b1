/**
 * SANA's aspect-ratio bins: for each base resolution, the (height, width) a given aspect ratio is
 * generated or trained at, every side a multiple of 32 (the DC-AE compression ratio) with about the
 * same pixel count as the square.
 *
 * Mirrors `ASPECT_RATIO_512_BIN` / `ASPECT_RATIO_1024_BIN` (diffusers pipelines/pixart_alpha),
 * `ASPECT_RATIO_2048_BIN` (pipelines/pixart_alpha/pipeline_pixart_sigma.py) and `ASPECT_RATIO_4096_BIN`
 * (pipelines/sana/pipeline_sana.py), and the nearest-ratio rule of
 * `PixArtImageProcessor.classify_height_width_bin`. The entries are the reference's, in its order (the
 * order decides ties). The 512 table is the 1024 table halved and the 4096 table the 2048 table doubled,
 * which is how they are stored here.
 */

/** One bin: `ratio` is the reference's key (height / width rounded to two decimals, as a string). */
export interface AspectRatioBin {
  readonly ratio: string;
  readonly height: number;
  readonly width: number;
}

function parseTable(spec: string, scale: number): readonly AspectRatioBin[] {
  return Object.freeze(
    spec
      .trim()
      .split(/\s+/)
      .map((entry) => {
        const [ratio, hw] = entry.split(':');
        const [h, w] = hw.split('x').map(Number);
        return Object.freeze({ ratio, height: h * scale, width: w * scale });
      }),
  );
}

// "ratio:HEIGHTxWIDTH", ascending ratio.
const BASE_1024 = `
0.25:512x2048 0.28:512x1856 0.32:576x1792 0.33:576x1728 0.35:576x1664 0.4:640x1600 0.42:640x1536
0.48:704x1472 0.5:704x1408 0.52:704x1344 0.57:768x1344 0.6:768x1280 0.68:832x1216 0.72:832x1152
0.78:896x1152 0.82:896x1088 0.88:960x1088 0.94:960x1024 1.0:1024x1024 1.07:1024x960 1.13:1088x960
1.21:1088x896 1.29:1152x896 1.38:1152x832 1.46:1216x832 1.67:1280x768 1.75:1344x768 2.0:1408x704
2.09:1472x704 2.4:1536x640 2.5:1600x640 3.0:1728x576 4.0:2048x512`;

const BASE_2048 = `
0.25:1024x4096 0.26:1024x3968 0.27:1024x3840 0.28:1024x3712 0.32:1152x3584 0.33:1152x3456
0.35:1152x3328 0.4:1280x3200 0.42:1280x3072 0.48:1408x2944 0.5:1408x2816 0.52:1408x2688
0.57:1536x2688 0.6:1536x2560 0.68:1664x2432 0.72:1664x2304 0.78:1792x2304 0.82:1792x2176
0.88:1920x2176 0.94:1920x2048 1.0:2048x2048 1.07:2048x1920 1.13:2176x1920 1.21:2176x1792
1.29:2304x1792 1.38:2304x1664 1.46:2432x1664 1.67:2560x1536 1.75:2688x1536 2.0:2816x1408
2.09:2944x1408 2.4:3072x1280 2.5:3200x1280 2.89:3328x1152 3.0:3456x1152 3.11:3584x1152
3.62:3712x1024 3.75:3840x1024 3.88:3968x1024 4.0:4096x1024`;

export const ASPECT_RATIO_512_BIN = parseTable(BASE_1024, 0.5);
export const ASPECT_RATIO_1024_BIN = parseTable(BASE_1024, 1);
export const ASPECT_RATIO_2048_BIN = parseTable(BASE_2048, 1);
export const ASPECT_RATIO_4096_BIN = parseTable(BASE_2048, 2);

/** Base resolutions with a bin table. */
export const BIN_RESOLUTIONS = [512, 1024, 2048, 4096] as const;
export type BinResolution = (typeof BIN_RESOLUTIONS)[number];

/** The bin table of a base resolution (512, 1024, 2048 or 4096 pixels). */
export function aspectRatioBins(resolution: number): readonly AspectRatioBin[] {
  switch (resolution) {
    case 512:
      return ASPECT_RATIO_512_BIN;
    case 1024:
      return ASPECT_RATIO_1024_BIN;
    case 2048:
      return ASPECT_RATIO_2048_BIN;
    case 4096:
      return ASPECT_RATIO_4096_BIN;
    default:
      throw new Error(`no aspect-ratio bins for resolution ${resolution}; expected one of ${BIN_RESOLUTIONS.join(', ')}`);
  }
}

/**
 * The bin table the reference pipeline picks from the transformer's `sample_size` (latent side at the
 * base resolution, with the f32 autoencoder): 16 -> 512, 32 -> 1024, 64 -> 2048, 128 -> 4096.
 */
export function aspectRatioBinsForSampleSize(sampleSize: number): readonly AspectRatioBin[] {
  const byLatent: Record<number, number> = { 16: 512, 32: 1024, 64: 2048, 128: 4096 };
  const resolution = byLatent[sampleSize];
  if (resolution === undefined) throw new Error(`no aspect-ratio bins for transformer sample_size ${sampleSize}; expected 16, 32, 64 or 128`);
  return aspectRatioBins(resolution);
}

/**
 * The bin whose ratio is nearest to height / width (the first of equally near ones, as the reference's
 * `min` over its ordered keys).
 */
export function nearestAspectRatioBin(height: number, width: number, bins: readonly AspectRatioBin[]): AspectRatioBin {
  if (!(height > 0) || !(width > 0)) throw new Error(`aspect-ratio bin: height and width must be > 0, got ${height}x${width}`);
  if (bins.length === 0) throw new Error('aspect-ratio bin: empty bin table');
  const ar = height / width;
  let best = bins[0];
  let bestDist = Math.abs(Number(best.ratio) - ar);
  for (const bin of bins) {
    const d = Math.abs(Number(bin.ratio) - ar);
    if (d < bestDist) {
      best = bin;
      bestDist = d;
    }
  }
  return best;
}
