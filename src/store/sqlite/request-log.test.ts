import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDatabase } from './database.js';
import { RequestLog } from './request-log.js';

describe('request log', () => {
  afterEach(() => vi.useRealTimers());

  it('answers a key seen before without running it again, and forgets it two periods later', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(0);
    const log = new RequestLog(openDatabase(':memory:'));
    let runs = 0;
    const run = () => ++runs;
    expect(log.once('k', run)).toEqual({ value: 1, replayed: false });
    expect(log.once('k', run)).toEqual({ value: 1, replayed: true });
    vi.setSystemTime(10 * 60_000); // the next period: still known
    expect(log.once('k', run)).toEqual({ value: 1, replayed: true });
    expect(log.once('other', run)).toEqual({ value: 2, replayed: false });
    vi.setSystemTime(20 * 60_000); // k's table comes round again: emptied
    expect(log.once('k', run)).toEqual({ value: 3, replayed: false });
    expect(log.once('other', run)).toEqual({ value: 2, replayed: true });
  });

  it('keeps nothing for an answer that did nothing, or without a key', () => {
    const log = new RequestLog(openDatabase(':memory:'));
    expect(log.once('pop', () => null, (v) => v !== null)).toEqual({ value: null, replayed: false });
    expect(log.once('pop', () => 'x', (v) => v !== null)).toEqual({ value: 'x', replayed: false });
    expect(log.once('pop', () => 'y', (v) => v !== null)).toEqual({ value: 'x', replayed: true });
    let runs = 0;
    log.once(null, () => ++runs);
    log.once(null, () => ++runs);
    expect(runs).toBe(2);
  });
});
