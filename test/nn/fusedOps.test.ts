/**
 * Functions with hand-written gradients (src/nn) against the chain rule through tfjs primitives:
 * same values and gradients.
 */
import { tf, Tensor } from '../../src/backend';
import { layerNorm, modulatedLayerNorm, relu, rngFor, silu } from '../../src/nn';
import { useTestBackend } from '../helpers';

beforeAll(useTestBackend);

function randn(name: string, shape: number[], scale = 1): Tensor {
  return tf.tensor(rngFor(11, name).normalArray(shape.reduce((a, b) => a * b, 1)).map((v) => v * scale), shape);
}

/** Value and gradients of sum(f(xs) * w) as flat arrays. */
function valueAndGrads(f: (...xs: Tensor[]) => Tensor, xs: Tensor[], w: Tensor): Float32Array[] {
  return tf.tidy(() => {
    const grads = tf.grads((...ys: Tensor[]) => f(...ys).mul(w).sum())(xs);
    return [f(...xs), ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

function expectClose(got: Float32Array[], want: Float32Array[], rtol: number): void {
  got.forEach((g, i) => {
    const scale = Math.max(1e-12, ...Array.from(want[i], Math.abs));
    let worst = 0;
    g.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - want[i][j]))));
    expect({ tensor: i, ok: worst / scale <= rtol || worst / scale }).toEqual({ tensor: i, ok: true });
  });
}

test.each([
  ['per-item modulation [B,1,D]', [3, 5, 8], [3, 1, 8]],
  ['shared modulation [1,1,D]', [2, 4, 6], [1, 1, 6]],
])('modulatedLayerNorm with %s matches the composite', (_n, xShape, modShape) => {
  const x = randn('x', xShape, 3).add(1.5);
  const scale = randn('scale', modShape, 0.5);
  const shift = randn('shift', modShape);
  const w = randn('w', xShape);
  const composite = (a: Tensor, s: Tensor, b: Tensor) => layerNorm(a, 1e-6).mul(s.add(1)).add(b);
  const fused = (a: Tensor, s: Tensor, b: Tensor) => modulatedLayerNorm(a, s, b, 1e-6);
  expectClose(valueAndGrads(fused, [x, scale, shift], w), valueAndGrads(composite, [x, scale, shift], w), 2e-6);
  tf.dispose([x, scale, shift, w]);
});

test('relu and silu match their composites (values and gradients)', () => {
  const x = randn('act', [4, 7], 2);
  const w = randn('actw', [4, 7]);
  expectClose(valueAndGrads(relu, [x], w), valueAndGrads((a) => tf.relu(a), [x], w), 0);
  expectClose(valueAndGrads(silu, [x], w), valueAndGrads((a) => a.mul(tf.sigmoid(a)), [x], w), 2e-6);
  tf.dispose([x, w]);
});
