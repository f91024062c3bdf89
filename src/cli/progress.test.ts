import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { formatBytes, progress } from './progress.js';

function sink(): { out: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const w = new Writable({ write: (c, _e, cb) => ((text += c), cb()) }) as unknown as NodeJS.WriteStream;
  return { out: w, text: () => text };
}

describe('transfer progress', () => {
  it('passes the bytes through unchanged and draws a final line on a terminal', async () => {
    const { out, text } = sink();
    (out as { isTTY?: boolean }).isTTY = true;
    const chunks: Buffer[] = [];
    await pipeline(Readable.from([Buffer.alloc(3 * 1024 * 1024, 1), Buffer.alloc(1024 * 1024, 2)]), progress('put big', 4 * 1024 * 1024, out), new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) }));
    expect(Buffer.concat(chunks).length).toBe(4 * 1024 * 1024);
    expect(text()).toMatch(/put big: 4\.0 MiB of 4\.0 MiB \(100%\), .*\/s\x1b\[K\n$/);
  });

  it('is silent when stderr is not a terminal', async () => {
    const { out, text } = sink();
    await pipeline(Readable.from([Buffer.from('abc')]), progress('get x', null, out), new Writable({ write: (_c, _e, cb) => cb() }));
    expect(text()).toBe('');
  });

  it('formats sizes', () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(5 * 2 ** 30)]).toEqual(['512 B', '1.5 KiB', '5.0 GiB']);
  });
});
