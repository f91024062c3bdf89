import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConsoleFollower, type AppLine } from './console-follower.js';

describe('ConsoleFollower', () => {
  it("reads app lines from a sim console and from a real guest's (journald prefix, CRLF, a getty prompt in front)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'console-'));
    const file = join(dir, 'console.log');
    const app = (msg: string): string => JSON.stringify({ level: 30, stream: 'stdout', msg });
    writeFileSync(file, '');
    const lines: AppLine[] = [];
    const f = new ConsoleFollower((l) => lines.push(l));
    try {
      f.follow('vm', file, 'g', 100);
      appendFileSync(
        file,
        [
          app('sim line'),
          `[ 3117.008658] dckinit[85]: ${app('guest line')}\r`,
          `rack-1234-100 login: [ 3857.994133] dckinit[85]: ${app('after a prompt')}\r`,
          '[ 3117.1] cloud-init[43]: Cloud-init v. 22.4.2 running\r',
          `[ 3117.2] dckinit[85]: ${JSON.stringify({ level: 30, msg: 'an agent event' })}\r`,
          '',
        ].join('\n'),
      );
      f.end('vm');
      expect(lines.map((l) => l.text)).toEqual(['sim line', 'guest line', 'after a prompt']);
    } finally {
      f.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
