import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** At most this much of a console file is read for its last lines. */
const CONSOLE_TAIL = 1024 * 1024;

/** The last `lines` lines of a VM's console file ('' when there is none), as `nova console-log` shows it. */
export function consoleTail(file: string, lines: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - CONSOLE_TAIL);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    const all = buf.toString('utf8').split('\n');
    if (start > 0) all.shift(); // a partial first line
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines).map((l) => l + '\n').join('');
  } finally {
    closeSync(fd);
  }
}
