import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { aliveLease, bootLease } from '../bus/bus.js';
import { silentLogger } from '../common/log.js';
import { FakeDriver } from '../compute/fake/fake-driver.js';
import { DEFAULT_QUOTAS } from '../protocol/process.js';
import type { NewProcess } from '../store/store.js';
import type { ComputeDriver } from '../compute/driver.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { Adoption } from './adoption.js';
import { Booter } from './boot.js';
import { Hooks, KernelEvents } from './events.js';
import { ProcessTable } from './process-table.js';

/** Leases as another kernel on the store would see them: who holds what, set by the test. */
class Leases {
  readonly id = 'leader';
  readonly held = new Map<string, string>();
  async acquire(): Promise<boolean> {
    return true;
  }
  async release(): Promise<void> {}
  async holder(name: string): Promise<string | null> {
    return this.held.get(name) ?? null;
  }
}

const ROW: NewProcess = { gid: 'g', ppid: null, name: 'p', template: 'image', flavor: null, args: {}, status: 'BUILD', app_state: 'pending', app_status: '', exit_code: null, signal: null, error: null, compute_id: null };

describe('Adoption: what a kernel that died leaves behind', () => {
  let store: SqliteStore;
  let compute: FakeDriver;
  let table: ProcessTable;
  let leases: Leases;
  let adoption: Adoption;
  let clock: number;

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    compute = new FakeDriver();
    leases = new Leases();
    const log = silentLogger();
    table = new ProcessTable(store.processes, new KernelEvents(), new Hooks(log), log);
    const booter = new Booter({ compute, table, processes: store.processes, log, url: () => 'http://kernel', concurrency: 4 });
    clock = Date.now();
    adoption = new Adoption({ processes: store.processes, table, compute, booter, leases, log, now: () => clock });
    await store.groups.create({ gid: 'g', name: 'g', description: '', template: 'image', flavor: null, args: {}, quotas: DEFAULT_QUOTAS, created_at: new Date().toISOString() });
  });
  afterEach(async () => {
    await store.close();
  });

  const fork = async (n: number) => (await table.create('g', Array.from({ length: n }, () => ROW), DEFAULT_QUOTAS)).processes;
  const statuses = async (): Promise<Array<[number, string, string | null]>> => (await store.processes.list('g', {})).map((p) => [p.pid, p.status, p.error]);

  it('a process without a VM whose booting kernel died ends in ERROR; one whose kernel lives, or this kernel\'s own, is left to boot', async () => {
    const [dead, alive, mine] = await fork(3);
    leases.held.set(bootLease('g', dead!.pid), 'gone-kernel');
    leases.held.set(bootLease('g', alive!.pid), 'other-kernel');
    leases.held.set(aliveLease('other-kernel'), 'other-kernel');
    leases.held.set(bootLease('g', mine!.pid), 'leader');
    await adoption.adoptLive();
    expect(await statuses()).toEqual([
      [100, 'ERROR', 'its kernel died before the VM was booted'],
      [101, 'BUILD', null],
      [102, 'BUILD', null],
    ]);
  });

  it('a process nobody claimed is given ten seconds from when the leader first sees it so (its fork may be claiming it right now), then ends in ERROR', async () => {
    await fork(1);
    await adoption.adoptLive();
    expect(await statuses()).toEqual([[100, 'BUILD', null]]);
    clock += 9_000;
    await adoption.adoptLive();
    expect(await statuses()).toEqual([[100, 'BUILD', null]]);
    clock += 2_000;
    await adoption.adoptLive();
    expect(await statuses()).toEqual([[100, 'ERROR', 'its kernel died before the VM was booted']]);
  });

  it('the VMs of live processes are handed to the driver once; one that is gone ends its process', async () => {
    const [a, b] = await fork(2);
    const adopted: string[][] = [];
    (compute as ComputeDriver).adopt = async (ids) => {
      adopted.push([...ids]);
      return new Map(ids.map((id) => [id, id === 'vm-b' ? 'GONE' : 'ACTIVE']));
    };
    await table.changeLive('g', a!.pid, { compute_id: 'vm-a', status: 'ACTIVE' });
    await table.changeLive('g', b!.pid, { compute_id: 'vm-b', status: 'ACTIVE' });
    await adoption.adoptLive();
    await adoption.adoptLive();
    expect(adopted).toEqual([['vm-a', 'vm-b']]);
    expect(await statuses()).toEqual([
      [100, 'ACTIVE', null],
      [101, 'ERROR', 'the VM stopped without its app reporting an exit'],
    ]);
  });
});
