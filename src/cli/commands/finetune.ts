/** `sana finetune`: LoRA fine-tuning of a pretrained SANA transformer. */
import { Command } from 'commander';
import { withBackendOption } from '../common';

export function registerFinetune(program: Command): void {
  withBackendOption(program.command('finetune').description('LoRA fine-tuning of a pretrained SANA transformer')).action(async () => {
    throw new Error('sana finetune is not available yet');
  });
}
