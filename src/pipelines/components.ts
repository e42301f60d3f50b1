/**
 * An opened pipeline folder or training checkpoint (`io/pretrained/pipeline`) as the components the
 * text-to-image pipeline runs: the prompt encoder built from its tokenizer, text-encoder loader and
 * prompt settings.
 */
import type { LoadedSanaPipeline } from '../io/pretrained/pipeline';
import { SanaPromptEncoder } from './promptEncoding';
import { SanaPipelineComponents } from './textToImage';

/** The components of `pipe`; the prompt encoder loads the text encoder on first use (release it after). */
export function pipelineComponents(pipe: LoadedSanaPipeline): SanaPipelineComponents {
  const promptEncoder = new SanaPromptEncoder({
    tokenizer: pipe.tokenizer,
    textEncoder: pipe.loadTextEncoder,
    complexHumanInstruction: pipe.prompt.complexHumanInstruction ? undefined : null,
    maxSequenceLength: pipe.prompt.maxSequenceLength,
  });
  return {
    transformer: pipe.transformer,
    vae: pipe.vae,
    promptEncoder,
    scheduler: pipe.scheduler,
    ...(pipe.vaeScalingFactor !== null ? { vaeScalingFactor: pipe.vaeScalingFactor } : {}),
  };
}
