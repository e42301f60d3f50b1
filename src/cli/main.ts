/**
 * The `sana` command line: turns argv into typed options and calls one library function per command.
 * Each command lives in `commands/<name>.ts` and registers itself on the program.
 */
import { Command, CommanderError } from 'commander';
import { registerTrain } from './commands/train';
import { registerFinetune } from './commands/finetune';
import { registerSample } from './commands/sample';
import { registerEval } from './commands/eval';
import { registerInfo } from './commands/info';
import { registerConvert } from './commands/convert';
import { registerFuse } from './commands/fuse';

/** Builds the program; `exitOverride` makes parse errors throw (for tests) instead of exiting. */
export function buildProgram(): Command {
  const program = new Command('sana')
    .description('Train, fine-tune and sample SANA text-to-image models on TensorFlow.js')
    .version(require('../../package.json').version as string)
    .showHelpAfterError();
  registerTrain(program);
  registerFinetune(program);
  registerSample(program);
  registerEval(program);
  registerInfo(program);
  registerConvert(program);
  registerFuse(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    console.error(`sana: ${(e as Error).message}`);
    if (process.env.SANA_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}

if (require.main === module || process.argv[1]?.endsWith('sana.js')) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
