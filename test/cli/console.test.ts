/** The commands' console output: progress rewritten in place on a terminal, plain lines otherwise. */
import { consoleLines, crossesTenth } from '../../src/cli/console';

function capture(tty: boolean, clearProgress = false) {
  let text = '';
  const out = consoleLines({ tty, clearProgress, write: (s) => void (text += s), log: (l) => void (text += `${l}\n`) });
  return { out, text: () => text };
}

test('on a terminal, progress is rewritten in place and kept above the next line', () => {
  const { out, text } = capture(true);
  out.progress('step 1/3');
  out.progress('step 2/3');
  out.line('checkpoint a');
  expect(text()).toBe('\rstep 1/3\x1b[K\rstep 2/3\x1b[K\ncheckpoint a\n');
});

test('clearProgress erases the progress line instead', () => {
  const { out, text } = capture(true, true);
  out.progress('image 1/2');
  out.line('wrote 2 images');
  expect(text()).toBe('\rimage 1/2\x1b[K\r\x1b[Kwrote 2 images\n');
});

test('without a terminal only permanent lines are written', () => {
  const { out, text } = capture(false);
  out.progress('step 1/3');
  out.line('done');
  expect(text()).toBe('done\n');
});

test('crossesTenth marks each tenth once and the end', () => {
  const marks = Array.from({ length: 25 }, (_, i) => i + 1).filter((d) => crossesTenth(d, 25));
  expect(marks).toEqual([3, 5, 8, 10, 13, 15, 18, 20, 23, 25]);
});
