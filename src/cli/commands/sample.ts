/** `sana sample`: generate images from a prompt with a pipeline folder or a training checkpoint. */
import { Command } from 'commander';
import { withBackendOption } from '../common';

export function registerSample(program: Command): void {
  withBackendOption(program.command('sample').description('generate images from a prompt with a pipeline folder or a training checkpoint')).action(async () => {
    throw new Error('sana sample is not available yet');
  });
}
