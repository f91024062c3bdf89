import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SignalEvent } from '../../src/protocol/channel.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

describe('signals for an agent that is offline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rack-signals-'));
  let k: TestKernel | undefined;
  afterAll(async () => {
    await k?.call('DELETE', `/v1/groups/${gid}`);
    await k?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  let gid = '';

  it('wait in the store, survive a kernel restart, and reach the agent in order when it connects', async () => {
    k = await startTestKernel({}, dir);
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'signals', template: 'idle' } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    const p = await untilProcess(k, gid, r.body.processes[0].pid, (x) => x.status === 'ACTIVE');
    // The idle image runs no agent: both signals are queued.
    await k.kernel.signal({ kind: 'admin' }, gid, p.pid, 'USR1');
    await k.kernel.signal({ kind: 'admin' }, gid, p.pid, 'HUP');
    await k.close();

    k = await startTestKernel({}, dir);
    const got: SignalEvent[] = [];
    const delivered = new Promise<void>((resolve) => {
      k!.kernel.attachAgent(gid, p.pid, {
        send: (ev) => {
          got.push(ev);
          if (got.length === 3) resolve();
        },
      });
    });
    // One sent while the queue is being delivered comes after it.
    await k.kernel.signal({ kind: 'admin' }, gid, p.pid, 'USR2');
    await delivered;
    expect(got.map((e) => e.signal)).toEqual(['USR1', 'HUP', 'USR2']);
  });
});
