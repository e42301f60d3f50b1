/**
 * `npm run golden -- DIR...`: checks the implementation against golden case folders, one line per case,
 * exit status 1 on any failure or unknown kind.
 */
import { Command } from 'commander';
import { describeBackend, initBackend } from '../backend';
import { checkCase, formatOutcome } from '../golden/check';

async function main(argv: string[]): Promise<number> {
  const program = new Command('golden')
    .description('compare this implementation with reference golden case folders')
    .argument('<dirs...>', 'case folders (each with case.json / config.json / io.safetensors)')
    .option('--backend <name>', 'tfjs backend (tensorflow-gpu, tensorflow, wasm, cpu); default: fastest available')
    .option('-v, --verbose', 'print every compared tensor')
    .exitOverride();
  program.parse(argv, { from: 'user' });
  const opts = program.opts<{ backend?: string; verbose?: boolean }>();
  const info = await initBackend(opts.backend);
  console.error(describeBackend(info));
  let failed = 0;
  for (const dir of program.args) {
    const outcome = await checkCase(dir);
    if (!outcome.ok) failed++;
    console.log(formatOutcome(outcome));
    if (opts.verbose) {
      for (const r of outcome.results) console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.tensor} max_abs=${r.maxAbs.toExponential(3)} allowed=${r.allowed.toExponential(3)}${r.note ? ` ${r.note}` : ''}`);
      if (outcome.error) console.log(outcome.error);
    }
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`golden: ${(e as Error).message}`);
    process.exit(2);
  },
);
