import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

/** Schema migrations, applied in order; `PRAGMA user_version` records how many ran. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE groups (
     gid TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     description TEXT NOT NULL,
     template TEXT,
     flavor TEXT,
     args TEXT NOT NULL,
     next_pid INTEGER NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE processes (
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     pid INTEGER NOT NULL,
     ppid INTEGER,
     name TEXT NOT NULL,
     template TEXT,
     flavor TEXT,
     args TEXT NOT NULL,
     status TEXT NOT NULL,
     app_state TEXT NOT NULL,
     app_status TEXT NOT NULL,
     exit_code INTEGER,
     signal TEXT,
     error TEXT,
     compute_id TEXT,
     reaped INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     ended_at TEXT,
     PRIMARY KEY (gid, pid)
   );
   CREATE INDEX processes_ppid ON processes (gid, ppid);
   CREATE INDEX processes_status ON processes (status);
   CREATE INDEX processes_compute ON processes (compute_id);
   CREATE TABLE tokens (
     hash TEXT PRIMARY KEY,
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     pid INTEGER NOT NULL
   );`,
  `CREATE TABLE messages (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     to_pid INTEGER NOT NULL,
     from_pid INTEGER NOT NULL,
     mid TEXT,
     data BLOB,
     binary INTEGER NOT NULL,
     size INTEGER NOT NULL,
     acked INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX messages_box ON messages (gid, to_pid, acked, seq);
   CREATE UNIQUE INDEX messages_mid ON messages (gid, from_pid, mid) WHERE mid IS NOT NULL;
   CREATE TABLE mailboxes (
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     pid INTEGER NOT NULL,
     count INTEGER NOT NULL,
     bytes INTEGER NOT NULL,
     PRIMARY KEY (gid, pid)
   );
   CREATE TABLE shm (
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     key TEXT NOT NULL,
     kind TEXT NOT NULL,
     value TEXT,
     version INTEGER NOT NULL,
     expires_at INTEGER,
     PRIMARY KEY (gid, key)
   );
   CREATE INDEX shm_expiry ON shm (expires_at) WHERE expires_at IS NOT NULL;
   CREATE TABLE shm_items (
     gid TEXT NOT NULL,
     key TEXT NOT NULL,
     pos INTEGER NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (gid, key, pos),
     FOREIGN KEY (gid, key) REFERENCES shm(gid, key) ON DELETE CASCADE
   );`,
  `CREATE TABLE kills (
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     pid INTEGER NOT NULL,
     signal TEXT NOT NULL,
     deadline INTEGER NOT NULL,
     PRIMARY KEY (gid, pid)
   );`,
  `CREATE TABLE signals (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     pid INTEGER NOT NULL,
     event TEXT NOT NULL
   );
   CREATE INDEX signals_target ON signals (gid, pid, seq);`,
  // The user_data every fork of the group gets unless it gives its own.
  `ALTER TABLE groups ADD COLUMN userdata TEXT;`,
  `ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'app';
   CREATE INDEX tokens_owner ON tokens (gid, pid);`,
  // Quotas of each group (JSON), and the bytes of shared memory each group holds.
  `ALTER TABLE groups ADD COLUMN quotas TEXT NOT NULL DEFAULT '{}';
   CREATE TABLE shm_usage (
     gid TEXT PRIMARY KEY REFERENCES groups(gid) ON DELETE CASCADE,
     bytes INTEGER NOT NULL
   );`,
  // The answers of requests that changed something, by request key, so that a request sent
  // again (after a lost answer, a kernel restart) is answered, not done twice.
  // Two generations, each keyed by request key alone (one b-tree written per request): a
  // generation is emptied whole when its turn comes again, so no index on time is needed.
  `CREATE TABLE requests_0 (key TEXT PRIMARY KEY, answer TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE requests_1 (key TEXT PRIMARY KEY, answer TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE request_periods (gen INTEGER PRIMARY KEY, period INTEGER NOT NULL);`,
  // The Resource Scheduler: what each live process takes from the pools, the fork queue (queued
  // = 1, in priority then seq order), and the groups' own pool bounds.
  `CREATE TABLE schedule (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     gid TEXT NOT NULL REFERENCES groups(gid) ON DELETE CASCADE,
     pid INTEGER NOT NULL,
     vcpus REAL NOT NULL,
     ram_mb INTEGER NOT NULL,
     queued INTEGER NOT NULL,
     priority INTEGER NOT NULL,
     deadline INTEGER,
     userdata TEXT,
     UNIQUE (gid, pid)
   );
   CREATE TABLE pools (
     gid TEXT PRIMARY KEY REFERENCES groups(gid) ON DELETE CASCADE,
     instances INTEGER,
     vcpus REAL,
     ram_mb INTEGER
   );`,
];

export function openDatabase(file: string): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  // WAL: readers never block the writer, and a kill -9 loses no committed transaction.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // Reads through a memory map: a large value (shared memory holds up to a MiB per key) is
  // copied once from the OS page cache instead of read page by page (5 ms -> under 1 ms for
  // 900 KB, on the kernel's one thread). The map is address space, not memory of our own.
  db.pragma('mmap_size = 268435456');
  // Each SQL text is compiled once: the stores write their statements inline where that reads
  // best, and compiling on every call cost more than running the statement (mailbox reads).
  // None of them uses iterate(), pluck() or raw(), so sharing a statement is safe.
  const compile = db.prepare.bind(db);
  const compiled = new Map<string, ReturnType<typeof compile>>();
  db.prepare = ((sql: string) => {
    let st = compiled.get(sql);
    if (!st) compiled.set(sql, (st = compile(sql)));
    return st;
  }) as typeof db.prepare;
  const done = db.pragma('user_version', { simple: true }) as number;
  for (let i = done; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[i]!);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
  return db;
}
