import { describe, expect, it } from 'vitest';
import type { Process } from '../protocol/process.js';
import type { ProcessStore } from '../store/store.js';
import { KernelEvents } from './events.js';
import { Waits } from './wait.js';

const child = (status: Process['status']): Process =>
  ({ gid: 'g', pid: 101, ppid: 100, status, exit_code: null, signal: 'KILL', error: null }) as Process;

describe('Waits.child (any child)', () => {
  it('a child that ends between the look for ended children and the look for live ones is waited for, not no_child', async () => {
    // The interleaving a networked store allows: reapAny finds nothing (the child is live), the
    // child is killed, then the list of live children is empty.
    let ended = false;
    const processes = {
      reapAny: async () => (ended ? child('KILLED') : null),
      list: async () => {
        ended = true;
        return [];
      },
    } as unknown as ProcessStore;
    const result = await new Waits(processes, new KernelEvents()).child('g', 100, undefined, Date.now() + 1000);
    expect(result).toMatchObject({ pid: 101, status: 'killed', signal: 'KILL' });
  });

  it('no child at all, live or ended: no_child', async () => {
    const processes = { reapAny: async () => null, list: async () => [] } as unknown as ProcessStore;
    await expect(new Waits(processes, new KernelEvents()).child('g', 100, undefined, Date.now() + 1000)).rejects.toMatchObject({ code: 'no_child' });
  });
});
