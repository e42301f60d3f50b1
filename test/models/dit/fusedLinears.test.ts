/**
 * `fusedLinears`: projections of one input as a single GEMM while gradients are recorded (training),
 * one product per layer otherwise (sampling, where concatenating the weights on every call would only
 * copy them); both give each layer's own output, and the fused form its gradients.
 */
import { tf, Tensor } from '../../../src/backend';
import { Linear, Module } from '../../../src/nn';
import { fusedLinears } from '../../../src/models/dit/attention';
import { useTestBackend } from '../../helpers';

beforeAll(useTestBackend);

class Projections extends Module {
  readonly q = this.module('to_q', new Linear(6, 4));
  readonly k = this.module('to_k', new Linear(6, 4));
  readonly v = this.module('to_v', new Linear(6, 5));
}

async function kernels(f: () => unknown): Promise<string[]> {
  return (await tf.profile(() => void f())).kernels.map((k) => k.name);
}

function maxDiff(a: Tensor, b: Tensor): number {
  return a.sub(b).abs().max().dataSync()[0];
}

test('one GEMM under gradient recording, one per layer when sampling; same outputs and gradients', async () => {
  const m = new Projections().initialize(3);
  const layers = [m.q, m.k, m.v];
  const x = tf.randomNormal([2, 3, 6], 0, 1, 'float32', 5);
  const separate = layers.map((l) => l.forward(x));

  const sampling = fusedLinears(layers, x);
  sampling.forEach((y, i) => expect(maxDiff(y, separate[i])).toBeLessThan(1e-6));
  const samplingKernels = await kernels(() => tf.tidy(() => fusedLinears(layers, x)));
  expect(samplingKernels.filter((k) => k === 'BatchMatMul')).toHaveLength(3);
  expect(samplingKernels).not.toContain('Concat');

  const w = layers.map((l, i) => tf.randomNormal([2, 3, l.outFeatures], 0, 1, 'float32', 10 + i));
  const loss = (ys: Tensor[]) => tf.addN(ys.map((y, i) => y.mul(w[i]).sum()));
  const fusedGrad = tf.grad((xx: Tensor) => loss(fusedLinears(layers, xx)))(x);
  const separateGrad = tf.grad((xx: Tensor) => loss(layers.map((l) => l.forward(xx))))(x);
  expect(maxDiff(fusedGrad, separateGrad)).toBeLessThan(1e-5);
  const trainingKernels = await kernels(() => tf.tidy(() => tf.grad((xx: Tensor) => loss(fusedLinears(layers, xx)))(x)));
  expect(trainingKernels).toContain('Concat');
  // Forward and the input's gradient: one product each instead of one per layer (backends may run a
  // transposed product as more than one kernel, so compare with the per-layer form).
  const perLayerKernels = await kernels(() => tf.tidy(() => tf.grad((xx: Tensor) => loss(layers.map((l) => l.forward(xx))))(x)));
  const products = (names: string[]) => names.filter((k) => k === 'BatchMatMul').length;
  expect(products(trainingKernels) * 3).toBe(products(perLayerKernels));

  tf.dispose([x, ...separate, ...sampling, ...w, fusedGrad, separateGrad]);
  m.dispose();
});
