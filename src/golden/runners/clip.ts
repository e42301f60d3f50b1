/**
 * Golden runner for CLIP-score cases: PIL-exact preprocessing of `image_uint8.i` (CHW uint8), the
 * CLIPModel of `config.json` + `model.safetensors`, features of `input_ids` / `attention_mask`, and
 * the torchmetrics score, each compared with the reference tensors present in `io.safetensors`.
 */
import { tf, Tensor2D } from '../../backend';
import { GoldenRunner, configClass } from '../runner';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, Tolerance, check, compareTensor } from '../compare';
import { SafetensorsCheckpoint, toInt32 } from '../../io/safetensors';
import { parseCLIPConfig } from '../../models/clip/config';
import { CLIPModel } from '../../models/clip/modeling';
import { chwToHwc, hwcToChw } from '../../eval/imageResize';
import { clipPixelValues, clipResizeAndCrop } from '../../eval/clipImageProcessor';
import { clipScoreFromCosines, pairCosines } from '../../eval/clipScore';
import { CLIP_POSITION_IDS } from '../../io/pretrained/clip';

const FALLBACK: Tolerance = { metric: 'allclose', atol: 5e-5, rtol: 1e-4 };
const EXACT: Tolerance = { metric: 'exact', atol: 0, rtol: 0 };

/** NHWC [N, H, W, C] host data -> NCHW. */
function nhwcToNchw(data: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) {
    out[((b * c + k) * h + y) * w + x] = data[((b * h + y) * w + x) * c + k];
  }
  return out;
}

function l2normalize(a: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += a[i * d + j] ** 2;
    const r = Math.sqrt(s);
    for (let j = 0; j < d; j++) out[i * d + j] = a[i * d + j] / r;
  }
  return out;
}

function images(c: GoldenCase) {
  const out = [];
  for (let i = 0; c.io.has(`image_uint8.${i}`); i++) {
    const t = ioTensor(c, `image_uint8.${i}`);
    const [ch, h, w] = t.shape;
    out.push(chwToHwc(t.data as Uint8Array, ch, h, w));
  }
  if (out.length === 0) throw new Error(`${c.name}: io.safetensors has no image_uint8.0`);
  return out;
}

export const clipRunner: GoldenRunner = {
  id: 'clip_score',
  matches: (c) => configClass(c) === 'CLIPModel' || c.config?.model_type === 'clip',
  run: async (c) => {
    const results: CheckResult[] = [];
    const has = (k: string) => c.io.has(k);
    const cmp = (k: string, got: ArrayLike<number>, shape?: number[]) => {
      if (has(k)) results.push(check(c.spec, k, got, ioTensor(c, k), FALLBACK, shape));
    };

    // 1. Preprocessing (uint8 resize compared exactly).
    const imgs = images(c);
    imgs.forEach((img, i) => {
      const key = `debug.resized_uint8.${i}`;
      if (!has(key)) return;
      const { resized } = clipResizeAndCrop(img);
      results.push(compareTensor(key, hwcToChw(resized), ioTensor(c, key), EXACT, [3, resized.height, resized.width]));
    });
    const model = new CLIPModel(parseCLIPConfig(c.config, c.file('config.json')));
    const ckpt = SafetensorsCheckpoint.open(c.file('model.safetensors'));
    model.loadStateDict(ckpt, { sourceName: c.file('model.safetensors'), ignore: [CLIP_POSITION_IDS] });

    const ids = ioTensor(c, 'input_ids');
    const mask = c.io.get('attention_mask');
    const [n, len] = ids.shape;
    const out = tf.tidy(() => {
      const pixels = clipPixelValues(imgs);
      const [b, h, w, ch] = pixels.shape;
      const idsT = tf.tensor2d(toInt32(ids, 'input_ids'), [n, len], 'int32');
      const maskT = mask ? tf.tensor2d(toInt32(mask, 'attention_mask'), [n, len], 'int32') : null;
      const visionPooled = model.vision_model.pooled(pixels);
      const textPooled = model.text_model.pooled(idsT, maskT);
      const imageEmbeds = model.visual_projection.forward(visionPooled) as Tensor2D;
      const textEmbeds = model.text_projection.forward(textPooled) as Tensor2D;
      return {
        pixels: nhwcToNchw(pixels.dataSync() as Float32Array, b, h, w, ch),
        pixelShape: [b, ch, h, w],
        visionPooled: visionPooled.dataSync() as Float32Array,
        textPooled: textPooled.dataSync() as Float32Array,
        imageEmbeds: imageEmbeds.dataSync() as Float32Array,
        textEmbeds: textEmbeds.dataSync() as Float32Array,
        logits: model.logitsPerImage(imageEmbeds, textEmbeds).dataSync() as Float32Array,
        dim: imageEmbeds.shape[1],
      };
    });
    model.dispose();

    // 2. Model outputs.
    cmp('pixel_values', out.pixels, out.pixelShape);
    cmp('debug.vision_pooled', out.visionPooled);
    cmp('debug.text_pooled', out.textPooled);
    cmp('image_embeds', out.imageEmbeds);
    cmp('text_embeds', out.textEmbeds);
    cmp('image_embeds_normalized', l2normalize(out.imageEmbeds, n, out.dim));
    cmp('text_embeds_normalized', l2normalize(out.textEmbeds, n, out.dim));
    cmp('logits_per_image', out.logits);

    // 3. Scores.
    const cos = pairCosines(out.imageEmbeds, out.textEmbeds, n, out.dim);
    cmp('cosine', cos);
    cmp('clip_score_per_pair', cos.map((x) => 100 * x));
    cmp('clip_score_per_pair_clamped', cos.map((x) => 100 * Math.max(x, 0)));
    cmp('clip_score', [clipScoreFromCosines(cos, 'torchmetrics')]);
    return results;
  },
};
