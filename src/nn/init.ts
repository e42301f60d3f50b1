/**
 * Parameter initialisers, computed on the host from a per-parameter random stream. Fan-in and fan-out
 * follow `torch.nn.init` (computed from the PyTorch shape: dim 1 is fan-in, dim 0 fan-out, times the
 * receptive field).
 */
import { Layout, torchToTfHost } from './layout';
import { rngFor } from './random';

export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number }
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'uniform'; low: number; high: number }
  /** `nn.init.xavier_uniform_`. */
  | { kind: 'xavier_uniform'; gain?: number }
  /** PyTorch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
  | { kind: 'torch_default'; fanIn: number };

export const zeros: Init = { kind: 'zeros' };
export const ones: Init = { kind: 'ones' };
export const constant = (value: number): Init => ({ kind: 'constant', value });
export const normal = (std: number, mean = 0): Init => ({ kind: 'normal', std, mean });
export const xavierUniform = (gain = 1): Init => ({ kind: 'xavier_uniform', gain });
export const torchDefault = (fanIn: number): Init => ({ kind: 'torch_default', fanIn });

/** Fan-in and fan-out of a PyTorch-layout weight. */
export function fans(torchShape: readonly number[]): { fanIn: number; fanOut: number } {
  if (torchShape.length < 2) return { fanIn: torchShape[0] ?? 1, fanOut: torchShape[0] ?? 1 };
  const receptive = torchShape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: torchShape[1] * receptive, fanOut: torchShape[0] * receptive };
}

/** Initial values in TF layout, drawn from stream `init/<key>` of `seed`. */
export function initialValues(init: Init, torchShape: readonly number[], layout: Layout, seed: number, key: string): Float32Array {
  const n = torchShape.reduce((a, b) => a * b, 1);
  const rng = rngFor(seed, `init/${key}`);
  let data: Float32Array;
  switch (init.kind) {
    case 'zeros':
      return new Float32Array(n);
    case 'ones':
      return new Float32Array(n).fill(1);
    case 'constant':
      return new Float32Array(n).fill(init.value);
    case 'normal':
      data = rng.normalArray(n, init.mean ?? 0, init.std);
      break;
    case 'uniform':
      data = rng.uniformArray(n, init.low, init.high);
      break;
    case 'xavier_uniform': {
      const { fanIn, fanOut } = fans(torchShape);
      const bound = (init.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
      data = rng.uniformArray(n, -bound, bound);
      break;
    }
    case 'torch_default': {
      const bound = init.fanIn > 0 ? 1 / Math.sqrt(init.fanIn) : 0;
      data = rng.uniformArray(n, -bound, bound);
      break;
    }
  }
  // Values are drawn in PyTorch order so the same seed fills the same logical weight in either layout.
  return torchToTfHost(layout, torchShape, data);
}
