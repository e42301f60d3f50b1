/**
 * Console output of the long-running commands: permanent lines, and a progress line that a terminal
 * rewrites in place (`\r` + clear to end of line). Without a terminal (logs, CI) nothing is rewritten:
 * each command prints progress at its own pace through `line`.
 */
export interface ConsoleLines {
  /** stdout is a terminal. */
  readonly tty: boolean;
  /** A permanent line; a progress line on screen is kept above it, or cleared with `clearProgress`. */
  line(text: string): void;
  /** On a terminal, shows `text` as the progress line; otherwise does nothing. */
  progress(text: string): void;
}

export interface ConsoleLinesOptions {
  /** Erase the progress line when a permanent line follows (default: keep it on screen). */
  clearProgress?: boolean;
  /** For tests: where raw text (progress) and permanent lines go, and whether it is a terminal. */
  write?: (s: string) => void;
  log?: (line: string) => void;
  tty?: boolean;
}

export function consoleLines(opts: ConsoleLinesOptions = {}): ConsoleLines {
  const write = opts.write ?? ((s: string) => void process.stdout.write(s));
  const log = opts.log ?? ((text: string) => console.log(text));
  const tty = opts.tty ?? process.stdout.isTTY === true;
  let pending = false;
  return {
    tty,
    line(text) {
      if (pending) write(opts.clearProgress ? '\r\x1b[K' : '\n');
      pending = false;
      log(text);
    },
    progress(text) {
      if (!tty) return;
      write(`\r${text}\x1b[K`);
      pending = true;
    },
  };
}

/** True when `done` of `total` crosses a tenth: progress worth a line in a non-terminal log. */
export function crossesTenth(done: number, total: number): boolean {
  return done === total || Math.floor((10 * done) / total) > Math.floor((10 * (done - 1)) / total);
}
