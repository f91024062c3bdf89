import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../src/common/until.js';
import { connect } from '../../src/libdck/index.js';
import type { Process } from '../../src/protocol/process.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';
import { RawClient } from '../support/ws-client.js';

/** Resource Monitoring end to end: real sim VMs whose guest agents sample real /proc every second. */
describe('resource monitoring', () => {
  const out = mkdtempSync(join(tmpdir(), 'rack-usage-'));
  let k: TestKernel;
  let gid: string;
  let root: Process;

  const sampled = (pid: number, n = 1): Promise<true> => {
    let seen = 0;
    return until(k.services.monitor, 'sample', (g: string, p: number) => g === gid && p === pid && ++seen >= n, () => (seen >= n ? true : null), Date.now() + 60_000, { timeoutMessage: `no usage sample from ${pid}` });
  };

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'usage', template: 'notify-app', args: { out } } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    root = r.body.processes[0];
    await sampled(root.pid, 2);
  });
  afterAll(async () => {
    await k.cleanup();
    rmSync(out, { recursive: true, force: true });
  });

  it("a process's usage: its VM and its app's process group, with a history", async () => {
    const r = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/usage?history=5`);
    expect(r.status).toBe(200);
    const u = r.body.usage;
    expect(u.latest).toMatchObject({ cpus: expect.any(Number), load: expect.any(Array) });
    expect(u.latest.app_procs).toBeGreaterThanOrEqual(1);
    expect(u.latest.app_rss).toBeGreaterThan(0);
    expect(u.latest.mem_total).toBeGreaterThan(u.latest.mem_available);
    expect(u.history.length).toBeGreaterThanOrEqual(2);
    expect(u.history.at(-1)).toEqual(u.latest);
  });

  it('the group roll-up counts IPC; libdck reads usage and the pool; /metrics has per-group gauges', async () => {
    expect((await k.call('POST', `/v1/groups/${gid}/processes/${root.pid}/messages`, { message: { data: 'hi' } })).status).toBe(202);
    expect((await k.call('PUT', `/v1/groups/${gid}/shm/k`, { value: 1 })).status).toBe(200);
    const g = (await k.call('GET', `/v1/groups/${gid}/usage`)).body.usage;
    expect(g).toMatchObject({ gid, reporting: 1, ipc: { messages: 1, shm: 1, pipes: 0, files: 0 } });
    expect(g.processes.map((p: { pid: number }) => p.pid)).toEqual([root.pid]);

    const rack = await connect({ url: k.url, token: k.tokenOf(root) });
    try {
      expect((await rack.usage()).latest?.app_procs).toBeGreaterThanOrEqual(1);
      expect((await rack.groupUsage()).reporting).toBe(1);
      expect((await rack.pool()).group.used.instances).toBe(1);
    } finally {
      rack.close();
    }

    const metrics = await (await fetch(`${k.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^rack_group_app_cpu_percent\\{gid="${gid}"\\} [0-9.]+$`, 'm'));
    expect(metrics).toContain(`rack_group_ipc_operations{gid="${gid}",kind="messages"} 1`);
    expect(metrics).toContain(`rack_group_processes_reporting{gid="${gid}"} 1`);
  });

  it("refuses a sample that is out of bounds, with a one-line error; an ended process's samples are gone", async () => {
    const idle = (await k.call('POST', '/v1/groups', { group: { name: 'idle', template: 'idle' } })).body.group.gid;
    const p = (await k.call('POST', `/v1/groups/${idle}/processes`, { process: {} })).body.processes[0];
    const agent = await RawClient.connect(k.url, k.agentTokenOf(p), 'agent');
    try {
      const ok = { t: 1, cpu_pct: 1, cpus: 1, load: [0, 0, 0], mem_total: 1, mem_available: 1, disk_total: 1, disk_used: 1, net_rx: 0, net_tx: 0, app_procs: 0, app_cpu_pct: 0, app_rss: 0 };
      expect((await agent.call('usage.report', ok)).ok).toBe(true);
      const bad = await agent.call('usage.report', { ...ok, t: 2, cpu_pct: 500 });
      expect(bad.error).toEqual({ code: 'bad_request', message: '"cpu_pct" must be from 0 to 100' });
      const extra = await agent.call('usage.report', { ...ok, t: 3, secret: 'x' });
      expect(extra.error.message).toMatch(/unknown field "secret"/);
      expect((await k.call('GET', `/v1/groups/${idle}/processes/${p.pid}/usage`)).body.usage.latest.t).toBe(1);
    } finally {
      await agent.close();
    }
    await k.call('DELETE', `/v1/groups/${idle}/processes/${p.pid}?signal=KILL`);
    await untilProcess(k, idle, p.pid, (x) => x.status === 'KILLED');
    expect((await k.call('GET', `/v1/groups/${idle}/processes/${p.pid}/usage`)).body.usage.latest).toBeNull();
  });
});
