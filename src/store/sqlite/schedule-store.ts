import type { Capacity } from '../../protocol/resources.js';
import type { ScheduleEntry, ScheduleStore } from '../store.js';
import type { Db } from './database.js';

interface Row {
  seq: number;
  gid: string;
  pid: number;
  vcpus: number;
  ram_mb: number;
  queued: number;
  priority: number;
  deadline: number | null;
  userdata: string | null;
}

export class SqliteSchedule implements ScheduleStore {
  private readonly addTx: (entries: ReadonlyArray<Omit<ScheduleEntry, 'seq'>>) => ScheduleEntry[];

  constructor(private readonly db: Db) {
    const ins = db.prepare(
      'INSERT INTO schedule (gid, pid, vcpus, ram_mb, queued, priority, deadline, userdata) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq',
    );
    this.addTx = db.transaction((entries: ReadonlyArray<Omit<ScheduleEntry, 'seq'>>) =>
      entries.map((e) => {
        const { seq } = ins.get(e.gid, e.pid, e.vcpus, e.ram_mb, e.queued ? 1 : 0, e.priority, e.deadline, e.userdata) as { seq: number };
        return { ...e, seq };
      }),
    );
  }

  async add(entries: ReadonlyArray<Omit<ScheduleEntry, 'seq'>>): Promise<ScheduleEntry[]> {
    return this.addTx(entries);
  }

  async dequeued(gid: string, pid: number): Promise<void> {
    this.db.prepare('UPDATE schedule SET queued = 0, userdata = NULL, deadline = NULL WHERE gid = ? AND pid = ?').run(gid, pid);
  }

  async delete(gid: string, pid: number): Promise<void> {
    this.db.prepare('DELETE FROM schedule WHERE gid = ? AND pid = ?').run(gid, pid);
  }

  async list(): Promise<ScheduleEntry[]> {
    const rows = this.db.prepare('SELECT * FROM schedule ORDER BY seq').all() as Row[];
    return rows.map((r) => ({ ...r, queued: r.queued === 1 }));
  }

  async setPool(gid: string, c: Capacity | null): Promise<void> {
    if (c === null) {
      this.db.prepare('DELETE FROM pools WHERE gid = ?').run(gid);
      return;
    }
    this.db
      .prepare(
        `INSERT INTO pools (gid, instances, vcpus, ram_mb) VALUES (?, ?, ?, ?)
         ON CONFLICT (gid) DO UPDATE SET instances = excluded.instances, vcpus = excluded.vcpus, ram_mb = excluded.ram_mb`,
      )
      .run(gid, c.instances ?? null, c.vcpus ?? null, c.ram_mb ?? null);
  }

  async pools(): Promise<Array<{ gid: string; capacity: Capacity }>> {
    const rows = this.db.prepare('SELECT * FROM pools ORDER BY gid').all() as Array<{ gid: string; instances: number | null; vcpus: number | null; ram_mb: number | null }>;
    return rows.map(({ gid, ...capacity }) => ({ gid, capacity }));
  }
}
