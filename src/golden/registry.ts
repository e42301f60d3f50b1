/**
 * Every golden-case runner, most specific first: the first whose `matches` accepts a case runs it.
 */
import { GoldenRunner } from './runner';
import { sanaTransformerRunner } from './runners/sanaTransformer';
import { loraRunner } from './runners/lora';
import { autoencoderDCRunner } from './runners/autoencoderDC';
import { gemma2Runner } from './runners/gemma2';
import { gemmaTokenizerRunner } from './runners/gemmaTokenizer';
import { schedulersRunner } from './runners/schedulers';
import { pipelineRunner } from './runners/pipeline';
import { rfTargetRunner } from './runners/rfTarget';
import { optimizersRunner } from './runners/optimizers';
import { fidMathRunner } from './runners/fidMath';
import { inceptionRunner } from './runners/inception';
import { clipRunner } from './runners/clip';

export const RUNNERS: GoldenRunner[] = [
  pipelineRunner,
  loraRunner,
  sanaTransformerRunner,
  autoencoderDCRunner,
  gemma2Runner,
  gemmaTokenizerRunner,
  schedulersRunner,
  rfTargetRunner,
  optimizersRunner,
  fidMathRunner,
  inceptionRunner,
  clipRunner,
];
