/** `sana train`: train a SANA model from a YAML config (rectified flow). */
import { Command } from 'commander';
import { withBackendOption } from '../common';

export function registerTrain(program: Command): void {
  withBackendOption(program.command('train').description('train a SANA model from a YAML config (rectified flow)')).action(async () => {
    throw new Error('sana train is not available yet');
  });
}
