import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADMIN } from '../../src/auth/auth.js';
import { silentLogger } from '../../src/common/log.js';
import { FakeDriver } from '../../src/compute/fake/fake-driver.js';
import { Kernel } from '../../src/kernel/kernel.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { adminCall, freePort, startKernelProcess, stopKernelProcess } from '../support/kernel-process.js';
import { osProcessesOfVm } from '../support/kernel.js';
import { watchGroup } from '../support/watch.js';
import { ADMIN_TOKEN } from '../support/kernel-process.js';

describe('kernel at scale', () => {
  /** CPU microseconds per VM to fork n children, and to delete their group. */
  async function perVm(n: number): Promise<{ fork: number; del: number }> {
    const store = new SqliteStore(':memory:');
    const kernel = new Kernel({ store, compute: new FakeDriver(), tokens: { issue: async (_g, pid) => ({ app: `rkp_test-app-${pid}`, agent: `rkg_test-agent-${pid}` }) }, log: silentLogger(), url: () => 'http://kernel', forkLimit: 1000, quotas: { processes: 10_000 } });
    const gid = (await kernel.createGroup({ name: 'big', template: 'image' })).gid;
    const [root] = await kernel.fork(ADMIN, gid, {});
    let t0 = process.cpuUsage();
    for (let i = 0; i < n; i += 1000) await kernel.fork(ADMIN, gid, { ppid: root!.pid, count: Math.min(1000, n - i) });
    const f = process.cpuUsage(t0);
    t0 = process.cpuUsage();
    await kernel.deleteGroup(gid);
    const d = process.cpuUsage(t0);
    await kernel.close();
    await store.close();
    return { fork: (f.user + f.system) / n, del: (d.user + d.system) / n };
  }

  it('fork and group delete cost the same per VM at 500 and at 2,000 VMs (linear, within 1.5x)', async () => {
    await perVm(200); // warm up the JIT first
    const small = await perVm(500);
    const large = await perVm(2000);
    expect(large.fork / small.fork).toBeLessThan(1.5);
    expect(large.del / small.del).toBeLessThan(1.5);
  });

  /** CPU seconds an OS process has used (user + system). */
  const cpuOf = (pid: number): number => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    const tick = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
    return (Number(fields[11]) + Number(fields[12])) / tick;
  };

  it('a group of 1,000 sim VMs is deleted with no process left, at the kernel CPU per VM of a group of 250 (within 1.5x)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-scale-'));
    const port = await freePort();
    let kernel: ChildProcess | undefined;
    try {
      kernel = await startKernelProcess(port, dir);
      const url = `http://127.0.0.1:${port}`;
      const admin = adminCall(url);
      const deleteCost = async (n: number): Promise<{ perVm: number; vms: string[] }> => {
        const gid = (await admin('POST', '/v1/groups', { group: { name: `scale-${n}`, template: 'idle', quotas: { processes: 2000 } } })).body.group.gid;
        const watch = await watchGroup(url, ADMIN_TOKEN, gid);
        await admin('POST', `/v1/groups/${gid}/processes`, { process: {} });
        for (let i = 0; i < n - 1; i += 500) await admin('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: Math.min(500, n - 1 - i) } });
        await watch.until((all) => all.size === n && [...all.values()].every((p) => p.status === 'ACTIVE'), 300_000);
        const vms = [...watch.latest.values()].map((p) => p.compute_id!);
        watch.close();
        const before = cpuOf(kernel!.pid!);
        expect((await admin('DELETE', `/v1/groups/${gid}`)).status).toBe(204);
        return { perVm: (cpuOf(kernel!.pid!) - before) / n, vms };
      };
      const small = await deleteCost(250);
      const large = await deleteCost(1000);
      for (const id of [...small.vms, ...large.vms].slice(0, 50)) expect(osProcessesOfVm(id)).toEqual([]);
      expect(large.perVm / Math.max(small.perVm, 0.0005)).toBeLessThan(1.5);
    } finally {
      if (kernel) await stopKernelProcess(kernel, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
