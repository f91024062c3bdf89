import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adminCall, freePort, startKernelProcess, stopKernelProcess } from '../support/kernel-process.js';
import { osProcessesOfVm } from '../support/kernel.js';
import { watchGroup } from '../support/watch.js';
import { ADMIN_TOKEN } from '../support/kernel-process.js';

// The cost per VM as groups grow (linear fork and delete) is measured by bench/scale.mjs; this
// test holds what must be true at scale whatever the machine's speed.
describe('kernel at scale', () => {
  it('a group of 1,000 sim VMs boots and is deleted with no process left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-scale-'));
    const port = await freePort();
    let kernel: ChildProcess | undefined;
    try {
      kernel = await startKernelProcess(port, dir);
      const url = `http://127.0.0.1:${port}`;
      const admin = adminCall(url);
      const n = 1000;
      const gid = (await admin('POST', '/v1/groups', { group: { name: 'scale', template: 'idle', quotas: { processes: 2000 } } })).body.group.gid;
      const watch = await watchGroup(url, ADMIN_TOKEN, gid);
      await admin('POST', `/v1/groups/${gid}/processes`, { process: {} });
      for (let i = 0; i < n - 1; i += 500) await admin('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: Math.min(500, n - 1 - i) } });
      await watch.until((all) => all.size === n && [...all.values()].every((p) => p.status === 'ACTIVE'), 300_000);
      const vms = [...watch.latest.values()].map((p) => p.compute_id!);
      watch.close();
      expect((await admin('DELETE', `/v1/groups/${gid}`)).status).toBe(204);
      expect((await admin('GET', `/v1/groups/${gid}`)).status).toBe(404);
      for (const id of vms) expect(osProcessesOfVm(id)).toEqual([]);
    } finally {
      if (kernel) await stopKernelProcess(kernel, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
