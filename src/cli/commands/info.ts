/** `sana info`: model presets and parameter counts. */
import { Command } from 'commander';
import { withBackendOption } from '../common';

export function registerInfo(program: Command): void {
  withBackendOption(program.command('info').description('model presets and parameter counts')).action(async () => {
    throw new Error('sana info is not available yet');
  });
}
