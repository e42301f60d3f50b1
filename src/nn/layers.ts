/**
 * Basic layers mirroring `torch.nn` (Linear, Conv2d, LayerNorm) and diffusers' RMSNorm, with the same
 * parameter names (`weight`, `bias`) and PyTorch-default initialisation. Activations are NHWC.
 */
import { tf, biasAdd, Tensor, Tensor4D } from '../backend';
import { Module, Parameter } from './module';
import { Init, ones, torchDefault, zeros } from './init';
import { customGradient } from './customGradient';

/**
 * A side branch added to a layer's output (LoRA and similar adapters): `forward` returns
 * `base(x) + sum(adapter.delta(x))`. Adapters live outside the layer's parameter tree, so the base
 * model's state dict never changes when adapters are attached.
 */
export interface Adapter {
  /** x: the layer input; returns a tensor shaped like the layer output. */
  delta(x: Tensor): Tensor;
}

export interface LinearOptions {
  bias?: boolean;
  weightInit?: Init;
  biasInit?: Init;
}

/** `nn.Linear`: y = x W^T + b over the last axis. Weight stored [in, out] in memory. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  /** Attached adapters (see `Adapter`). */
  adapters: Adapter[] = [];

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures], opts.weightInit ?? torchDefault(inFeatures), 'linear');
    this.bias = opts.bias === false ? null : this.param('bias', [outFeatures], opts.biasInit ?? torchDefault(inFeatures));
  }

  /** x: [..., in] -> [..., out]. */
  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.reshape([-1, this.inFeatures]);
      let y = tf.matMul(x2, this.weight.value);
      if (this.bias) y = biasAdd(y, this.bias.value);
      let out = y.reshape([...lead, this.outFeatures]);
      for (const a of this.adapters) out = out.add(a.delta(x));
      return out;
    });
  }
}

export interface Conv2dOptions {
  stride?: number;
  /** Symmetric zero padding on H and W (PyTorch `padding=`). */
  padding?: number;
  groups?: number;
  bias?: boolean;
  weightInit?: Init;
  biasInit?: Init;
}

/**
 * `nn.Conv2d` on NHWC input. Depthwise convolutions (groups == in == out) use a depthwise kernel;
 * other grouped convolutions run one convolution per group.
 */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
  readonly depthwise: boolean;
  /** Attached adapters (see `Adapter`). */
  adapters: Adapter[] = [];

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, opts: Conv2dOptions = {}) {
    super();
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.groups = opts.groups ?? 1;
    if (inChannels % this.groups || outChannels % this.groups) {
      throw new Error(`Conv2d: in (${inChannels}) and out (${outChannels}) channels must be divisible by groups (${this.groups})`);
    }
    this.depthwise = this.groups > 1 && this.groups === inChannels && outChannels === inChannels;
    const fanIn = (inChannels / this.groups) * kernelSize * kernelSize;
    this.weight = this.param('weight', [outChannels, inChannels / this.groups, kernelSize, kernelSize], opts.weightInit ?? torchDefault(fanIn), this.depthwise ? 'depthwise' : 'conv2d');
    this.bias = opts.bias === false ? null : this.param('bias', [outChannels], opts.biasInit ?? torchDefault(fanIn));
  }

  /** x: [B, H, W, in] -> [B, H', W', out]. */
  forward(x: Tensor): Tensor4D {
    return tf.tidy(() => {
      const x4 = x as Tensor4D;
      const w = this.weight.value as unknown as Tensor4D;
      const s = this.stride;
      const k = this.kernelSize;
      const pointwise = k === 1 && s === 1 && this.padding === 0;
      const [xp, p] = pointwise ? [x4, 'valid' as const] : convPadding(x4, k, k, s, this.padding, this.padding);
      let y: Tensor4D;
      if (this.groups === 1) {
        y = pointwise ? this.pointwise(x4, w) : (tf.conv2d(xp, w, s, p) as Tensor4D);
      } else if (this.depthwise) {
        y = tf.depthwiseConv2d(xp, w, s, p) as Tensor4D;
      } else {
        const xs = tf.split(xp, this.groups, 3) as Tensor4D[];
        const ws = tf.split(w, this.groups, 3) as Tensor4D[];
        y = tf.concat(xs.map((xg, g) => (pointwise ? this.pointwise(xg, ws[g]) : tf.conv2d(xg, ws[g], s, p))), 3) as Tensor4D;
      }
      if (this.bias) y = biasAdd(y, this.bias.value) as Tensor4D;
      for (const a of this.adapters) y = y.add(a.delta(x)) as Tensor4D;
      return y;
    });
  }

  /** A 1x1 convolution as one matmul over all pixels (faster than conv2d on every backend). */
  private pointwise(x: Tensor4D, w: Tensor4D): Tensor4D {
    const [b, h, wd, c] = x.shape;
    const o = w.shape[3];
    return tf.matMul(x.reshape([b * h * wd, c]), w.reshape([c, o])).reshape([b, h, wd, o]);
  }
}

/**
 * PyTorch's symmetric zero padding (ph, pw) as an input and a padding mode every backend accepts:
 * native TensorFlow takes only 'valid' and 'same'. Stride 1 with odd kernels and half-kernel padding
 * is exactly 'same'; anything else pads explicitly and convolves 'valid'.
 */
export function convPadding(x: Tensor4D, kh: number, kw: number, stride: number, ph: number, pw: number): [Tensor4D, 'valid' | 'same'] {
  if (ph === 0 && pw === 0) return [x, 'valid'];
  if (stride === 1 && kh % 2 === 1 && kw % 2 === 1 && 2 * ph === kh - 1 && 2 * pw === kw - 1) return [x, 'same'];
  return [tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]]), 'valid'];
}

export interface NormOptions {
  eps?: number;
  /** Learnable scale (and bias for LayerNorm). */
  elementwiseAffine?: boolean;
  /** LayerNorm only: learnable bias (default: same as elementwiseAffine). */
  bias?: boolean;
  weightInit?: Init;
}

/** `nn.LayerNorm` over the last axis. */
export class LayerNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;

  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? this.param('weight', [dim], opts.weightInit ?? ones) : null;
    this.bias = affine && (opts.bias ?? true) ? this.param('bias', [dim], zeros) : null;
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      let y = layerNorm(x, this.eps);
      if (this.weight) y = y.mul(this.weight.value);
      if (this.bias) y = y.add(this.bias.value);
      return y;
    });
  }
}

/** Normalises the last axis to zero mean, unit variance (biased variance, as PyTorch). */
export function layerNorm(x: Tensor, eps: number): Tensor {
  return tf.tidy(() => {
    const mean = x.mean(-1, true);
    const centered = x.sub(mean);
    const variance = centered.square().mean(-1, true);
    return centered.mul(variance.add(eps).rsqrt());
  });
}

/**
 * adaLN modulation of a parameter-free LayerNorm, layerNorm(x) * (1 + scale) + shift, with the
 * gradient written out (the LayerNorm backward in its closed form,
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * (1 + scale)): about half the
 * full-size kernels of the chain rule through mean, variance and the broadcasts.
 * @param x [B, N, D]; scale, shift broadcastable against it over N (e.g. [B, 1, D])
 */
export const modulatedLayerNorm: (x: Tensor, scale: Tensor, shift: Tensor, eps: number) => Tensor = (x, scale, shift, eps) =>
  modulatedLayerNormOp(eps)(x, scale, shift);

const modulatedLayerNormOps = new Map<number, (...xs: Tensor[]) => Tensor>();

function modulatedLayerNormOp(eps: number): (...xs: Tensor[]) => Tensor {
  let op = modulatedLayerNormOps.get(eps);
  if (op) return op;
  op = customGradient(3, ([x, scale, shift], save) => {
    const mean = x.mean(-1, true);
    const centered = x.sub(mean);
    const rstd = centered.square().mean(-1, true).add(eps).rsqrt();
    const xhat = centered.mul(rstd);
    const gain = scale.add(1);
    save([xhat, rstd, gain]);
    const value = xhat.mul(gain).add(shift);
    return {
      value,
      gradFunc: (dy, [xh, r, g1]) =>
        tf.tidy(() => {
          // Reduce over the axes `scale`/`shift` were broadcast along (N, and B if they had size 1 there).
          const reduceTo = (t: Tensor, shape: number[]) => {
            const axes = tf.backend_util.getReductionAxes(shape, t.shape);
            return (axes.length ? t.sum(axes, true) : t).reshape(shape);
          };
          const g = dy.mul(g1);
          const dx = g.sub(g.mean(-1, true)).sub(xh.mul(g.mul(xh).mean(-1, true))).mul(r);
          return [dx, reduceTo(dy.mul(xh), scale.shape), reduceTo(dy, shift.shape)];
        }),
    };
  });
  modulatedLayerNormOps.set(eps, op);
  return op;
}

/** Scales the last axis by 1 / sqrt(mean(x^2) + eps). */
export function rmsNorm(x: Tensor, eps: number): Tensor {
  return tf.tidy(() => x.mul(x.square().mean(-1, true).add(eps).rsqrt()));
}

/** diffusers' `RMSNorm` over the last axis: x / rms(x) * weight. */
export class RMSNorm extends Module {
  readonly weight: Parameter | null;
  readonly eps: number;

  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.weight = (opts.elementwiseAffine ?? true) ? this.param('weight', [dim], opts.weightInit ?? ones) : null;
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const y = rmsNorm(x, this.eps);
      return this.weight ? y.mul(this.weight.value) : y;
    });
  }
}
