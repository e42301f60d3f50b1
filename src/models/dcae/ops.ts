/**
 * Channel/space rearrangements of DC-AE on NHWC tensors, written with reshape/transpose and
 * broadcasting multiplies so that every one has a gradient on every backend (tfjs has no gradient for
 * depthToSpace/spaceToDepth, and none for `tile` above rank 4).
 * Channel orders follow PyTorch's NCHW ops exactly, because the weights were trained with them:
 * - `F.pixel_unshuffle(x, r)`: out channel c*r*r + i*r + j  <-  in channel c at (h*r+i, w*r+j);
 * - `F.pixel_shuffle(x, r)`:  the inverse;
 * - `x.repeat_interleave(n, dim=1)`: out channel c*n + k  <-  in channel c;
 * - `x.unflatten(1, (-1, g)).mean(2)`: out channel c = mean of in channels c*g .. c*g+g-1.
 */
import { tf, Tensor4D } from '../../backend';

/** `F.pixel_unshuffle`: [B, H, W, C] -> [B, H/r, W/r, C*r*r]. */
export function pixelUnshuffle(x: Tensor4D, r: number): Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    if (h % r || w % r) throw new Error(`pixel_unshuffle: spatial size ${h}x${w} is not divisible by ${r}`);
    return x
      .reshape([b, h / r, r, w / r, r, c]) // [B, h, i, w, j, C]
      .transpose([0, 1, 3, 5, 2, 4]) // [B, h, w, C, i, j]
      .reshape([b, h / r, w / r, c * r * r]);
  });
}

/** `F.pixel_shuffle`: [B, H, W, C*r*r] -> [B, H*r, W*r, C]. */
export function pixelShuffle(x: Tensor4D, r: number): Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, cr] = x.shape;
    if (cr % (r * r)) throw new Error(`pixel_shuffle: ${cr} channels are not divisible by ${r * r}`);
    const c = cr / (r * r);
    return x
      .reshape([b, h, w, c, r, r]) // [B, h, w, C, i, j]
      .transpose([0, 1, 4, 2, 5, 3]) // [B, h, i, w, j, C]
      .reshape([b, h * r, w * r, c]);
  });
}

/** `x.repeat_interleave(n, dim=1)` on the channel axis: [B, H, W, C] -> [B, H, W, C*n]. */
export function repeatChannels(x: Tensor4D, n: number): Tensor4D {
  return tf.tidy(() => {
    if (n === 1) return x.clone();
    const [b, h, w, c] = x.shape;
    return x.reshape([b, h, w, c, 1]).mul(tf.ones([1, 1, 1, 1, n])).reshape([b, h, w, c * n]);
  });
}

/** Mean over groups of `g` consecutive channels: [B, H, W, C] -> [B, H, W, C/g]. */
export function channelGroupMean(x: Tensor4D, g: number): Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    if (c % g) throw new Error(`channel group mean: ${c} channels are not divisible by group size ${g}`);
    if (g === 1) return x.clone();
    return x.reshape([b, h, w, c / g, g]).mean(4) as Tensor4D;
  });
}

/** `F.interpolate(x, scale_factor=r, mode="nearest")`: [B, H, W, C] -> [B, H*r, W*r, C]. */
export function upsampleNearest(x: Tensor4D, r: number): Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    return x.reshape([b, h, 1, w, 1, c]).mul(tf.ones([1, 1, r, 1, r, 1])).reshape([b, h * r, w * r, c]);
  });
}

/** NCHW -> NHWC (golden files and PyTorch callers hold NCHW). */
export function nchwToNhwc(x: Tensor4D): Tensor4D {
  return tf.tidy(() => x.transpose([0, 2, 3, 1]));
}

/** NHWC -> NCHW. */
export function nhwcToNchw(x: Tensor4D): Tensor4D {
  return tf.tidy(() => x.transpose([0, 3, 1, 2]));
}
