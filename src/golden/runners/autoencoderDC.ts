/**
 * Golden runner: AutoencoderDC cases.
 * - plain (`dc_ae_tiny`): latent = encode(image); reconstruction = decode(stored latent);
 *   loss = mean((decode(encode(image)) - image)^2) and its gradient for every parameter;
 * - tiled (`case.json` has `tiling`, e.g. `dc_ae_tiled`): encode/decode with diffusers' tiling settings.
 * io tensors are NCHW; the model is NHWC, so inputs and outputs are transposed at this edge. Gradients
 * are compared in PyTorch layout. Tensors without a tolerance in `case.json` (debug, `*_full`) are skipped.
 */
import { tf, Tensor4D } from '../../backend';
import { GoldenRunner, configClass } from '../runner';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, compareTensor, toleranceFor } from '../compare';
import { toFloat32 } from '../../io/safetensors';
import { loadAutoencoderDC } from '../../io/pretrained/autoencoder';
import { AutoencoderDC, TilingOptions, nchwToNhwc, nhwcToNchw } from '../../models/dcae';
import { tfToTorch, valueAndGrads } from '../../nn';

function nhwcInput(c: GoldenCase, name: string): Tensor4D {
  const t = ioTensor(c, name);
  return tf.tidy(() => nchwToNhwc(tf.tensor4d(toFloat32(t, name), t.shape as [number, number, number, number])));
}

/** Compares an NHWC result with an NCHW reference under the case's tolerance. */
function compareNhwc(c: GoldenCase, name: string, got: Tensor4D): CheckResult {
  const tol = toleranceFor(c.spec, name);
  if (!tol) throw new Error(`${c.name}: case.json gives no tolerance for ${name}`);
  const nchw = nhwcToNchw(got);
  const r = compareTensor(name, nchw.dataSync() as Float32Array, ioTensor(c, name), tol, nchw.shape);
  nchw.dispose();
  return r;
}

function hasTolerance(c: GoldenCase, name: string): boolean {
  return c.io.has(name) && toleranceFor(c.spec, name) !== null;
}

function runPlain(c: GoldenCase, model: AutoencoderDC): CheckResult[] {
  const results: CheckResult[] = [];
  const image = nhwcInput(c, 'image');
  const latentRef = nhwcInput(c, 'latent');
  try {
    const latent = model.encode(image);
    results.push(compareNhwc(c, 'latent', latent));
    latent.dispose();
    const recon = model.decode(latentRef);
    results.push(compareNhwc(c, 'reconstruction', recon));
    recon.dispose();

    const gradNames = [...c.io.keys()].filter((k) => k.startsWith('grad.'));
    if (!hasTolerance(c, 'loss') && gradNames.length === 0) return results;
    const params = model.trainableParameters();
    const byKey = new Map(params);
    const { value, grads } = valueAndGrads(() => tf.tidy(() => model.decode(model.encode(image)).sub(image).square().mean() as tf.Scalar), params);
    if (hasTolerance(c, 'loss')) results.push(compareTensor('loss', value.dataSync() as Float32Array, ioTensor(c, 'loss'), toleranceFor(c.spec, 'loss')!));
    for (const name of gradNames) {
      const key = name.slice('grad.'.length);
      const p = byKey.get(key);
      const g = grads.get(key);
      if (!p || !g) {
        results.push({ tensor: name, ok: false, maxAbs: Infinity, allowed: 0, note: 'no such trainable parameter in the model' });
        continue;
      }
      const torch = tfToTorch(p.layout, g);
      results.push(compareTensor(name, torch.dataSync() as Float32Array, ioTensor(c, name), toleranceFor(c.spec, name) ?? { metric: 'per_tensor', rtol: 0, atol: 0 }, torch.shape));
      torch.dispose();
    }
    value.dispose();
    tf.dispose([...grads.values()]);
    return results;
  } finally {
    tf.dispose([image, latentRef]);
  }
}

/** `enable_tiling(**settings)` keyword names -> TilingOptions. */
function tilingFromSpec(settings: Record<string, unknown>): TilingOptions {
  const num = (k: string) => (settings[k] === undefined || settings[k] === null ? undefined : Number(settings[k]));
  return {
    tileSampleMinHeight: num('tile_sample_min_height'),
    tileSampleMinWidth: num('tile_sample_min_width'),
    tileSampleStrideHeight: num('tile_sample_stride_height'),
    tileSampleStrideWidth: num('tile_sample_stride_width'),
  };
}

function runTiled(c: GoldenCase, model: AutoencoderDC): CheckResult[] {
  const tiling = tilingFromSpec((c.spec.tiling?.settings ?? {}) as Record<string, unknown>);
  const results: CheckResult[] = [];
  if (hasTolerance(c, 'decoded_tiled')) {
    const z = nhwcInput(c, 'latent');
    const out = model.decodeTiled(z, tiling);
    results.push(compareNhwc(c, 'decoded_tiled', out));
    tf.dispose([z, out]);
  }
  if (hasTolerance(c, 'encoded_tiled')) {
    const x = nhwcInput(c, 'image');
    const out = model.encodeTiled(x, tiling);
    results.push(compareNhwc(c, 'encoded_tiled', out));
    tf.dispose([x, out]);
  }
  return results;
}

export const autoencoderDCRunner: GoldenRunner = {
  id: 'autoencoder_dc',
  matches: (c) => configClass(c) === 'AutoencoderDC',
  run: async (c) => {
    const model = loadAutoencoderDC(c.file('model.safetensors'), { config: c.config ?? {} });
    try {
      return c.spec.tiling ? runTiled(c, model) : runPlain(c, model);
    } finally {
      model.dispose();
    }
  },
};

