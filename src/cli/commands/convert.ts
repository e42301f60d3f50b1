/** `sana convert`: convert an original SANA .pth checkpoint to a diffusers-style folder. */
import { Command } from 'commander';
import { withBackendOption } from '../common';

export function registerConvert(program: Command): void {
  withBackendOption(program.command('convert').description('convert an original SANA .pth checkpoint to a diffusers-style folder')).action(async () => {
    throw new Error('sana convert is not available yet');
  });
}
