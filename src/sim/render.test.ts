import { describe, expect, it } from 'vitest';
import { drawTimelines } from './render.js';

describe('drawTimelines', () => {
  it('draws each VM from its start to its end, dotted while it waited in the fork queue', () => {
    const out = drawTimelines(
      [
        { pid: 100, ppid: null, label: 'root', start: 0, end: null, outcome: '' },
        { pid: 101, ppid: 100, label: 'ran', start: 0, end: 5000, outcome: 'exit 0' },
        { pid: 102, ppid: 100, label: 'waited', start: 0, end: 10_000, outcome: 'exit 0', booted: 5000 },
        { pid: 103, ppid: 100, label: 'killed', start: 0, end: 2000, outcome: 'killed (TERM)', booted: 2000 },
      ],
      0,
      10_000,
      10,
    ).split('\n');
    expect(out[1]).toMatch(/^100 root +━{10} +$/);
    expect(out[2]).toMatch(/^ {2}101 ran +━{5} {5} {2}exit 0$/);
    expect(out[3]).toMatch(/^ {2}102 waited +┄{5}━{5} {2}exit 0$/);
    expect(out[4]).toMatch(/^ {2}103 killed +┄{2} {8} {2}killed \(TERM\)$/);
  });
});
