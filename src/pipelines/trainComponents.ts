/**
 * The pieces of a training run's text-to-image pipeline, built from its resolved config: the frozen
 * text encoder (a pretrained Gemma-2 folder, or a randomly initialised one from a seed), the
 * autoencoder, the sampling scheduler, and a whole pipeline opened from a training checkpoint (the
 * checkpoint holds only `transformer/`; everything else is rebuilt from `<run>/config.yaml`).
 *
 * A seeded random text encoder is a legitimate frozen encoder for small experiments (the DiT learns to
 * read whatever features it gives, as long as they are fixed): the same config and seed rebuild the same
 * weights bit for bit, so checkpoints need not carry it.
 */
import * as crypto from 'crypto';
import type { TrainConfig } from '../config/train';
import { Gemma2Model, parseGemma2Config } from '../models/text';
import { gemmaEncoderIdentity, loadGemma2Model, loadGemmaTokenizer, seededGemma2Model } from '../io/pretrained/gemma';
import { TextEmbeddingCache } from '../data/textEmbeddingCache';
import { SanaPromptEncoder } from './promptEncoding';
import { SanaPipelineComponents } from './textToImage';
import { openRunCheckpoint } from '../io/pretrained/pipeline';
import { pipelineComponents } from './components';

/** How to obtain a run's frozen text encoder, and a string that names its weights (for caches). */
export interface TextEncoderSource {
  load(): Gemma2Model;
  identity: string;
}

/** The run's text encoder: `text_encoder.pretrained`, or `text_encoder.config` initialised from a seed. */
export function textEncoderSource(c: TrainConfig): TextEncoderSource {
  const te = c.text_encoder;
  if (te.pretrained) {
    const dir = te.pretrained;
    return { load: () => loadGemma2Model(dir), identity: gemmaEncoderIdentity(dir) };
  }
  if (!te.config) throw new Error('text_encoder: flow training needs a text encoder: set text_encoder.pretrained (a Gemma-2 folder) or text_encoder.config (config.json fields of a seeded, randomly initialised Gemma-2)');
  const config = parseGemma2Config(te.config, 'text_encoder.config');
  const seed = te.init_seed ?? c.seed;
  const identity = crypto.createHash('sha256').update(JSON.stringify({ random_gemma2: config, seed, version: 1 })).digest('hex');
  return {
    load: () => seededGemma2Model(te.config!, seed, 'text_encoder.config'),
    identity,
  };
}

/** A prompt encoder for the run (embeddings cached under `cacheDir` when given). */
export function promptEncoderFor(c: TrainConfig, cacheDir: string | null): SanaPromptEncoder {
  const source = textEncoderSource(c);
  return new SanaPromptEncoder({
    tokenizer: loadGemmaTokenizer(c.text_encoder.tokenizer ?? undefined),
    textEncoder: () => source.load(),
    cache: cacheDir ? new TextEmbeddingCache(cacheDir, source.identity) : undefined,
    maxSequenceLength: c.text_encoder.max_length,
    complexHumanInstruction: c.text_encoder.complex_human_instruction ? undefined : null,
  });
}

export interface CheckpointPipeline {
  config: TrainConfig;
  components: SanaPipelineComponents;
  /** Frees the transformer, the autoencoder and the text encoder. */
  dispose(): void;
}

export interface OpenCheckpointOptions {
  /** Use the EMA weights (`ema.safetensors`) when the checkpoint has them. Default true. */
  ema?: boolean;
}

/**
 * Opens a flow-task training checkpoint (or a run folder's newest one) as a text-to-image pipeline,
 * through the loader `sana sample` uses: `transformer/` (or its EMA weights) from the checkpoint, the
 * autoencoder, text encoder and scheduler from the run's config.
 */
export function openCheckpointPipeline(checkpointDir: string, opts: OpenCheckpointOptions = {}): CheckpointPipeline {
  const { pipeline, config } = openRunCheckpoint(checkpointDir, { ema: opts.ema ?? true });
  const components = pipelineComponents(pipeline);
  return {
    config,
    components,
    dispose: () => {
      pipeline.dispose();
      if (components.promptEncoder.isLoaded) components.promptEncoder.release();
    },
  };
}
