/** `sana eval`: FID and CLIP score of a folder of generated images. */
import { Command } from 'commander';
import { withBackendOption } from '../common';

export function registerEval(program: Command): void {
  withBackendOption(program.command('eval').description('FID and CLIP score of a folder of generated images')).action(async () => {
    throw new Error('sana eval is not available yet');
  });
}
