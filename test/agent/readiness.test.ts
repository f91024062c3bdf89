import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

/** Readiness from the app: dckinit's NOTIFY_SOCKET, relayed to the kernel as app_state ready and app_status. */
const hasSystemdNotify = (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, 'systemd-notify')));

describe.skipIf(!hasSystemdNotify)('app readiness (sd_notify)', () => {
  const out = mkdtempSync(join(tmpdir(), 'rack-ready-'));
  let k: TestKernel;
  let gid: string;

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'ready', template: 'notify-app', args: { out } } })).body.group.gid;
  });
  afterAll(async () => {
    await k.cleanup();
    rmSync(out, { recursive: true, force: true });
  });

  it('a shell app: `systemd-notify --status` while it warms up, `--ready` makes it ready', async () => {
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { name: 'shell' } });
    const pid = r.body.processes[0].pid as number;
    const warming = await untilProcess(k, gid, pid, (p) => p.app_status === 'warming up');
    expect(warming.app_state).toBe('running');
    writeFileSync(join(out, 'go'), '');
    const ready = await untilProcess(k, gid, pid, (p) => p.app_state === 'ready' && p.app_status === 'serving');
    expect(ready.status).toBe('ACTIVE');
  });

  it("fork's wait_ready answers once a libdck app has called rack.ready()", async () => {
    const r = await k.call('POST', `/v1/groups/${gid}/processes?wait_ready=60`, { process: { ppid: 100, count: 2 } });
    expect(r.status).toBe(202);
    expect(r.body.processes.map((p: { app_state: string }) => p.app_state)).toEqual(['ready', 'ready']);
    await untilProcess(k, gid, r.body.processes[0].pid, (p) => p.app_status === 'child serving');
  });
});
