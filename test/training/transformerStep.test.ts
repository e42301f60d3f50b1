/**
 * A SanaTransformer2DModel training step as `sana train` runs it (flow-matching loss, gradients through
 * the hand-written ReLU/SiLU/LayerNorm/linear-attention gradients, bucketed AdamW, EMA-free) leaves
 * nothing behind: neither engine tensors nor backend buffers grow after a warm-up step, on whatever
 * backend runs the tests (the native and wasm kernel shortcuts share and keep data below the engine).
 */
import { tf } from '../../src/backend';
import { rngFor, valueAndGrads } from '../../src/nn';
import { SanaTransformer2DModel } from '../../src/models/dit';
import { sanaTransformerPreset } from '../../src/models/dit/presets';
import { AdamW } from '../../src/training/optim';
import { expectNoLeak, useTestBackend } from '../helpers';

beforeAll(useTestBackend);

test('no tensor or buffer leak across transformer training steps', async () => {
  const config = sanaTransformerPreset('tiny');
  const model = new SanaTransformer2DModel(config).initialize(0);
  const params = model.namedParameters().filter(([, p]) => p.trainable);
  const opt = new AdamW(params, { weightDecay: 0.01 });
  const [b, s, c, l] = [2, config.sample_size, config.in_channels, 5];
  const r = rngFor(1, 'transformer-step');
  const latents = tf.tensor4d(r.normalArray(b * s * s * c), [b, s, s, c]);
  const noise = tf.tensor4d(r.normalArray(b * s * s * c), [b, s, s, c]);
  const sigmas = tf.tensor4d([0.3, 0.8], [b, 1, 1, 1]);
  const text = tf.tensor3d(r.normalArray(b * l * config.caption_channels), [b, l, config.caption_channels]);
  const mask = tf.tensor2d([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], [b, l]);
  const step = () => {
    const { value, grads } = valueAndGrads(
      () =>
        tf.tidy(() => {
          const xt = tf.sub(1, sigmas).mul(latents).add(sigmas.mul(noise)) as tf.Tensor4D;
          const v = model.forward({ hiddenStates: xt, encoderHiddenStates: text, encoderAttentionMask: mask, timestep: tf.tensor1d([300, 800]) });
          return tf.squaredDifference(v, noise.sub(latents)).mean() as tf.Scalar;
        }),
      params,
    );
    opt.step(grads, 1e-3);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    tf.dispose([value, ...grads.values()]);
  };
  await expectNoLeak(step);
  opt.dispose();
  model.dispose();
  tf.dispose([latents, noise, sigmas, text, mask]);
});
