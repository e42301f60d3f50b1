/**
 * Tiled encode/decode with overlap blending, as diffusers' `AutoencoderDC.enable_tiling` /
 * `tiled_encode` / `tiled_decode` / `blend_v` / `blend_h` do (`models/autoencoders/autoencoder_dc.py`),
 * so results match the reference's tiled output, not just the untiled one.
 *
 * Tiles start every `stride` and span `min` (edge tiles are smaller, never padded, except that encoder
 * tiles are zero-padded bottom/right to a multiple of the compression ratio). Tiles are blended in
 * reading order: each with the tile above, then with the tile to its left, where those neighbours are
 * the FULL tiles as already blended themselves. Each kept part is the tile's top-left `stride` window.
 *
 * Only two rows of (small) output tiles and one tile's activations are alive at a time, so peak memory
 * follows the tile size, not the image size.
 */
import { tf, Tensor4D } from '../../backend';

/** Tile settings in image pixels, with diffusers' names in camelCase and its defaults. */
export interface TilingOptions {
  /** Tile height in pixels (default 512); images no taller (and no wider) than a tile are not tiled. */
  tileSampleMinHeight?: number;
  /** Tile width in pixels (default 512). */
  tileSampleMinWidth?: number;
  /** Distance between tile starts in pixels (default 448); a multiple of the compression ratio. */
  tileSampleStrideHeight?: number;
  /** Distance between tile starts in pixels (default 448); a multiple of the compression ratio. */
  tileSampleStrideWidth?: number;
}

export const DEFAULT_TILING: Required<TilingOptions> = {
  tileSampleMinHeight: 512,
  tileSampleMinWidth: 512,
  tileSampleStrideHeight: 448,
  tileSampleStrideWidth: 448,
};

/** Resolved tile geometry, in pixels (`sample*`) and latent pixels (`latent*`): [height, width] pairs. */
export interface TileGeometry {
  ratio: number;
  sampleMin: [number, number];
  sampleStride: [number, number];
  latentMin: [number, number];
  latentStride: [number, number];
}

/** Validates tiling options against a compression ratio. */
export function resolveTiling(opts: TilingOptions | undefined, ratio: number): TileGeometry {
  const o = { ...DEFAULT_TILING, ...Object.fromEntries(Object.entries(opts ?? {}).filter(([, v]) => v !== undefined)) };
  for (const k of Object.keys(DEFAULT_TILING) as Array<keyof TilingOptions>) {
    const v = o[k];
    if (!Number.isInteger(v) || v <= 0) throw new Error(`tiling: ${k} must be a positive integer, got ${v}`);
  }
  for (const [stride, min, sk, mk] of [
    [o.tileSampleStrideHeight, o.tileSampleMinHeight, 'tileSampleStrideHeight', 'tileSampleMinHeight'],
    [o.tileSampleStrideWidth, o.tileSampleMinWidth, 'tileSampleStrideWidth', 'tileSampleMinWidth'],
  ] as const) {
    // Decoding advances stride/ratio latent pixels but keeps stride output pixels: anything but a
    // multiple of the ratio gives an image of the wrong size (the reference does not check).
    if (stride % ratio) throw new Error(`tiling: ${sk} (${stride}) must be a multiple of the compression ratio ${ratio}`);
    if (min < stride) throw new Error(`tiling: ${mk} (${min}) must be at least ${sk} (${stride}), or tiles would leave gaps`);
    if (min < ratio) throw new Error(`tiling: ${mk} (${min}) must be at least the compression ratio ${ratio}`);
  }
  return {
    ratio,
    sampleMin: [o.tileSampleMinHeight, o.tileSampleMinWidth],
    sampleStride: [o.tileSampleStrideHeight, o.tileSampleStrideWidth],
    latentMin: [Math.floor(o.tileSampleMinHeight / ratio), Math.floor(o.tileSampleMinWidth / ratio)],
    latentStride: [o.tileSampleStrideHeight / ratio, o.tileSampleStrideWidth / ratio],
  };
}

/**
 * `blend_v` (axis 1) / `blend_h` (axis 2): the first e rows (columns) of b become
 * a[-e + y] * (1 - y/e) + b[y] * (y/e), with e = min(a size, b size, extent). Returns a new tensor.
 */
export function blendEdge(a: Tensor4D, b: Tensor4D, extent: number, axis: 1 | 2): Tensor4D {
  return tf.tidy(() => {
    const e = Math.min(a.shape[axis], b.shape[axis], extent);
    if (e <= 0) return b.clone();
    const wb = new Float32Array(e);
    const wa = new Float32Array(e);
    for (let y = 0; y < e; y++) {
      wb[y] = y / e;
      wa[y] = 1 - y / e;
    }
    const wShape = axis === 1 ? [1, e, 1, 1] : [1, 1, e, 1];
    const aTail = sliceAxis(a, axis, a.shape[axis] - e, e);
    const bHead = sliceAxis(b, axis, 0, e);
    const mixed = aTail.mul(tf.tensor(wa, wShape)).add(bHead.mul(tf.tensor(wb, wShape)));
    const rest = b.shape[axis] - e;
    return (rest > 0 ? tf.concat([mixed, sliceAxis(b, axis, e, rest)], axis) : mixed) as Tensor4D;
  });
}

function sliceAxis(x: Tensor4D, axis: 1 | 2, start: number, size: number): Tensor4D {
  const begin = [0, 0, 0, 0];
  const sizes = [...x.shape];
  begin[axis] = start;
  sizes[axis] = size;
  return x.slice(begin, sizes);
}

/**
 * Runs `f` on overlapping tiles of `x` and blends the results (shared by tiled encode and decode).
 * - tileIn / strideIn: tile size and step in input pixels;
 * - strideOut / blend: kept window and blend extent in output pixels;
 * - prepare: optional per-tile input transform (zero padding before the encoder).
 */
function tiledMap(
  x: Tensor4D,
  f: (tile: Tensor4D) => Tensor4D,
  tileIn: [number, number],
  strideIn: [number, number],
  strideOut: [number, number],
  blend: [number, number],
  prepare?: (tile: Tensor4D) => Tensor4D,
): Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const rows: Tensor4D[] = [];
    let above: Tensor4D[] | null = null;
    for (let i = 0; i < h; i += strideIn[0]) {
      const row: Tensor4D[] = [];
      const kept: Tensor4D[] = [];
      for (let j = 0, col = 0; j < w; j += strideIn[1], col++) {
        let tile = tf.tidy(() => {
          const input = x.slice([0, i, j, 0], [b, Math.min(tileIn[0], h - i), Math.min(tileIn[1], w - j), c]);
          return f(prepare ? prepare(input) : input);
        });
        if (above) tile = replace(tile, blendEdge(above[col], tile, blend[0], 1));
        if (col > 0) tile = replace(tile, blendEdge(row[col - 1], tile, blend[1], 2));
        row.push(tile);
        kept.push(tile.slice([0, 0, 0, 0], [b, Math.min(strideOut[0], tile.shape[1]), Math.min(strideOut[1], tile.shape[2]), tile.shape[3]]));
      }
      rows.push(tf.concat(kept, 2) as Tensor4D);
      kept.forEach((t) => t.dispose());
      above?.forEach((t) => t.dispose());
      above = row;
    }
    above?.forEach((t) => t.dispose());
    const out = tf.concat(rows, 1) as Tensor4D;
    rows.forEach((t) => t.dispose());
    return out;
  });
}

/** Disposes `old` and returns `next` (tiles are replaced by their blended versions). */
function replace(old: Tensor4D, next: Tensor4D): Tensor4D {
  old.dispose();
  return next;
}

/** `tiled_decode`: latent [B, h, w, C] -> image [B, ~h*r, ~w*r, C_out], decoding tile by tile with `decode`. */
export function tiledDecode(z: Tensor4D, decode: (tile: Tensor4D) => Tensor4D, g: TileGeometry): Tensor4D {
  const blend: [number, number] = [g.sampleMin[0] - g.sampleStride[0], g.sampleMin[1] - g.sampleStride[1]];
  return tiledMap(z, decode, g.latentMin, g.latentStride, g.sampleStride, blend);
}

/** `tiled_encode`: image [B, H, W, C] -> latent [B, floor(H/r), floor(W/r), C_lat], encoding tile by tile. */
export function tiledEncode(x: Tensor4D, encode: (tile: Tensor4D) => Tensor4D, g: TileGeometry): Tensor4D {
  return tf.tidy(() => {
    const [b, h, w] = x.shape;
    const r = g.ratio;
    const blend: [number, number] = [g.latentMin[0] - g.latentStride[0], g.latentMin[1] - g.latentStride[1]];
    // Edge tiles are zero-padded bottom/right to a multiple of the ratio before encoding.
    const pad = (t: Tensor4D): Tensor4D => {
      const ph = (r - (t.shape[1] % r)) % r;
      const pw = (r - (t.shape[2] % r)) % r;
      return ph || pw ? tf.pad(t, [[0, 0], [0, ph], [0, pw], [0, 0]]) : t;
    };
    const full = tiledMap(x, encode, g.sampleMin, g.sampleStride, g.latentStride, blend, pad);
    return full.slice([0, 0, 0, 0], [b, Math.floor(h / r), Math.floor(w / r), full.shape[3]]);
  });
}

/** diffusers' condition for tiled decoding: the latent is larger than one tile. */
export function decodeNeedsTiling(latentShape: readonly number[], g: TileGeometry): boolean {
  return latentShape[2] > g.latentMin[1] || latentShape[1] > g.latentMin[0];
}

/** diffusers' condition for tiled encoding: the image is larger than one tile. */
export function encodeNeedsTiling(imageShape: readonly number[], g: TileGeometry): boolean {
  return imageShape[2] > g.sampleMin[1] || imageShape[1] > g.sampleMin[0];
}
