/**
 * Image resampling that reproduces Pillow's `Image.resize` on 8-bit images bit for bit
 * (python-pillow/Pillow, `src/libImaging/Resample.c`): separable convolution, horizontal pass first
 * into an 8-bit intermediate (only the rows the vertical pass needs), then vertical.
 *
 * What makes it exact (and differ from torch / TensorFlow resizers):
 * - bicubic uses a = -0.5 (torch and TF use -0.75);
 * - when downscaling, the kernel is stretched by the scale factor (antialiasing), support = 2 * scale;
 * - per output pixel the window is [trunc(center - support + 0.5), trunc(center + support + 0.5))
 *   clipped to the image, the weights are normalised to sum 1 in float64, then rounded to 22-bit
 *   fixed point (away from zero);
 * - accumulation is integer with a rounding offset of 2^21, the result is `>> 22` and clamped to [0, 255].
 */

/** An 8-bit image, rows of interleaved channels (HWC), like sharp's raw output. */
export interface ImageU8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

export type ResampleFilter = 'bicubic' | 'bilinear' | 'box';

interface Filter {
  support: number;
  weight(x: number): number;
}

const FILTERS: Record<ResampleFilter, Filter> = {
  bicubic: {
    support: 2,
    weight(x) {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  bilinear: {
    support: 1,
    weight(x) {
      const t = Math.abs(x);
      return t < 1 ? 1 - t : 0;
    },
  },
  box: {
    support: 0.5,
    weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0),
  },
};

const PRECISION_BITS = 32 - 8 - 2;
const ROUNDING = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Per output index: first input index, tap count, and fixed-point weights (ksize per output). */
interface Coefficients {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis (box = the whole input). */
function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const inv = 1 / filterScale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const n = hi - lo;
    let total = 0;
    for (let k = 0; k < n; k++) {
      w[k] = filter.weight((k + lo - center + 0.5) * inv);
      total += w[k];
    }
    for (let k = 0; k < n; k++) {
      const v = total !== 0 ? w[k] / total : w[k];
      // C's (int) truncates toward zero after the +-0.5: round half away from zero.
      weights[o * ksize + k] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[o] = lo;
    count[o] = n;
  }
  return { ksize, start, count, weights };
}

function clip8(acc: number): number {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes an 8-bit image to `width` x `height` exactly as Pillow's `Image.resize(..., resample)`
 * does for "L"/"RGB"/"RGBA"-like data (no alpha premultiplication: callers pass RGB).
 */
export function resizeU8(img: ImageU8, width: number, height: number, filter: ResampleFilter = 'bicubic'): ImageU8 {
  const { width: inW, height: inH, channels: ch, data } = img;
  if (data.length !== inW * inH * ch) throw new Error(`resize: ${data.length} bytes for a ${inW}x${inH}x${ch} image`);
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`resize: target size must be positive integers, got ${width}x${height}`);
  }
  const f = FILTERS[filter];
  if (!f) throw new Error(`resize: unknown filter "${filter}" (expected bicubic, bilinear or box)`);
  const needH = width !== inW;
  const needV = height !== inH;
  if (!needH && !needV) return { data: Uint8Array.from(data), width, height, channels: ch };

  const vert = coefficients(inH, height, f);
  // 1. Horizontal pass over the rows the vertical pass will read.
  let src = data;
  let srcRows = inH;
  let rowOffset = 0;
  if (needH) {
    const firstRow = vert.start[0];
    const lastRow = vert.start[height - 1] + vert.count[height - 1];
    const horiz = coefficients(inW, width, f);
    const rows = lastRow - firstRow;
    const tmp = new Uint8Array(rows * width * ch);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + firstRow) * inW * ch;
      const outRow = y * width * ch;
      for (let x = 0; x < width; x++) {
        const s = horiz.start[x];
        const n = horiz.count[x];
        const kw = x * horiz.ksize;
        for (let c = 0; c < ch; c++) {
          let acc = ROUNDING;
          for (let k = 0; k < n; k++) acc += data[inRow + (s + k) * ch + c] * horiz.weights[kw + k];
          tmp[outRow + x * ch + c] = clip8(acc);
        }
      }
    }
    src = tmp;
    srcRows = rows;
    rowOffset = firstRow;
  }
  if (!needV) return { data: src, width, height: srcRows, channels: ch };

  // 2. Vertical pass.
  const w = needH ? width : inW;
  const out = new Uint8Array(height * w * ch);
  for (let y = 0; y < height; y++) {
    const s = vert.start[y] - rowOffset;
    const n = vert.count[y];
    const kw = y * vert.ksize;
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < ch; c++) {
        let acc = ROUNDING;
        for (let k = 0; k < n; k++) acc += src[((s + k) * w + x) * ch + c] * vert.weights[kw + k];
        out[(y * w + x) * ch + c] = clip8(acc);
      }
    }
  }
  return { data: out, width: w, height, channels: ch };
}

/** CHW planes (as in the golden files) -> interleaved HWC. */
export function chwToHwc(data: Uint8Array, channels: number, height: number, width: number): ImageU8 {
  const out = new Uint8Array(data.length);
  const plane = height * width;
  for (let c = 0; c < channels; c++) for (let i = 0; i < plane; i++) out[i * channels + c] = data[c * plane + i];
  return { data: out, width, height, channels };
}

/** Interleaved HWC -> CHW planes. */
export function hwcToChw(img: ImageU8): Uint8Array {
  const { data, width, height, channels } = img;
  const out = new Uint8Array(data.length);
  const plane = height * width;
  for (let c = 0; c < channels; c++) for (let i = 0; i < plane; i++) out[c * plane + i] = data[i * channels + c];
  return out;
}

/** Crops a `width` x `height` window at (top, left); the window must lie inside the image. */
export function cropU8(img: ImageU8, top: number, left: number, width: number, height: number): ImageU8 {
  if (top < 0 || left < 0 || top + height > img.height || left + width > img.width) {
    throw new Error(`crop: window ${width}x${height} at (${top}, ${left}) is outside the ${img.width}x${img.height} image`);
  }
  const ch = img.channels;
  const out = new Uint8Array(width * height * ch);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * img.width + left) * ch;
    out.set(img.data.subarray(from, from + width * ch), y * width * ch);
  }
  return { data: out, width, height, channels: ch };
}
