/**
 * The parent process (PPID == NULL): the seed's File Catcher APP with its Target Database.
 * It takes CSV files handed to it (put-file), forks one child per chunk from the same image,
 * stores the rows the children send, and replaces any child that dies before its chunk is done.
 * The application, not the infrastructure, sizes its scale-out: it reads the resource pool
 * before forking, forks what the pool can hold now, and lets the kernel's queue absorb the rest.
 */
import { connect, type Rack } from 'rack/libdck';
import { BatchReader } from './batch.js';
import { childrenFor, planChunks, type ChunkStart } from './chunking.js';
import { TargetDatabase } from './database.js';
import type { ChunkProgress, JobStatus, Message, PutFile } from './protocol.js';
import { statusKey } from './protocol.js';

const CHUNK_SIZE = Number(process.env.RACK_ARG_CHUNK_SIZE ?? 4 * 1024 * 1024);
const MAX_CHILDREN = Number(process.env.RACK_ARG_MAX_CHILDREN ?? 4);

interface Job {
  status: JobStatus;
  header: string[];
  /** The chunks whose start is known (all of them once status.state is no longer "planning"); `end` once it is known. */
  chunks: Array<ChunkStart & { end: number | null }>;
  db: TargetDatabase | null;
  /** Live child pid -> its chunk. */
  children: Map<number, number>;
  dirty: boolean;
}

const log = (msg: string, fields: Record<string, unknown> = {}): void => console.log(JSON.stringify({ msg, ...fields }));

async function main(): Promise<void> {
  const rack = await connect();
  const jobs = new Map<string, Job>();
  const byChild = new Map<number, Job>();
  log('file catcher ready', { pid: rack.pid, chunk_size: CHUNK_SIZE, max_children: MAX_CHILDREN });
  await rack.status('ready');

  // Progress goes to shared memory, at most 5 times a second per job.
  setInterval(() => {
    for (const job of jobs.values()) if (job.dirty) void publish(rack, job);
  }, 200).unref();

  // Wakes the reaper when the first child is forked (before that, wait() would say no_child).
  let childForked: (() => void) | null = null;

  const fork = async (job: Job, c: ChunkProgress): Promise<void> => {
    const chunk = job.chunks[c.index]!;
    const [child] = await rack.fork({
      name: `csv-${c.index}`,
      args: {
        job: job.status.job,
        path: `inbox/${job.status.job}.csv`,
        chunk: String(c.index),
        start: String(chunk.start),
        // Its end if the plan has found it, else where the child will find it.
        ...(chunk.end !== null ? { end: String(chunk.end) } : chunk.cut !== null ? { cut: String(chunk.cut) } : {}),
        size: String(job.status.size),
        first_line: String(chunk.firstLine),
        columns: String(job.header.length),
      },
    });
    c.pid = child!.pid;
    c.attempts++;
    c.state = child!.status === 'QUEUED' ? 'queued' : 'running';
    if (c.state === 'queued') job.status.queued++;
    c.rows = 0;
    c.done_bytes = 0;
    job.status.forks++;
    job.children.set(child!.pid, c.index);
    byChild.set(child!.pid, job);
    childForked?.();
    job.dirty = true;
  };

  const finishIfDone = async (job: Job): Promise<void> => {
    if (job.status.state !== 'running' || job.status.chunks.some((c) => c.state !== 'done')) return;
    const summary = job.db!.summary();
    Object.assign(job.status, {
      state: 'done',
      rows_inserted: summary.rows,
      rows_rejected: summary.rejects,
      checksum: summary.checksum,
      reject_lines: summary.rejects <= 100_000 ? job.db!.rejectLines() : null,
      finished_at: Date.now(),
    });
    log('job done', { job: job.status.job, rows: summary.rows, rejects: summary.rejects, forks: job.status.forks });
    await publish(rack, job);
  };

  const putFile = async (m: PutFile): Promise<void> => {
    if (jobs.has(m.job)) return; // the same request again
    const status: JobStatus = {
      job: m.job, state: 'planning', size: m.size, chunks: [], forks: 0, queued: 0, pool_free: null, rows_inserted: 0, rows_rejected: 0,
      checksum: null, reject_lines: null, error: null, started_at: Date.now(), finished_at: null,
    };
    const job: Job = { status, header: [], chunks: [], db: null, children: new Map(), dirty: true };
    jobs.set(m.job, job);
    try {
      // What the pool holds now: the group's room and the kernel's, whichever is less.
      const pool = await rack.pool();
      const free = [pool.group.free.instances, pool.kernel.free.instances].filter((n): n is number => n !== null);
      status.pool_free = free.length ? Math.min(...free) : null;
      const expected = childrenFor(m.size, CHUNK_SIZE, MAX_CHILDREN);
      const now = status.pool_free === null ? expected : Math.min(expected, status.pool_free);
      log('planning', { job: m.job, chunks: expected, size: m.size, pool_free: status.pool_free, fork_now: now, queue: expected - now });
      // Each chunk is forked as soon as planning has found its start (the child finds its end
      // itself, by the plan's rule): the first child boots while the rest of the file is still
      // being read, as early as a job of one chunk. Forks go one after the other, in order.
      let forking = Promise.resolve();
      const plan = await planChunks(await rack.files.get(m.path), m.size, { chunkSize: CHUNK_SIZE, max: MAX_CHILDREN }, {
        header(h) {
          job.header = h;
          job.db = new TargetDatabase(`target-${m.job}.db`);
          job.db.prepare(h);
        },
        start(c) {
          const end = c.cut === null ? m.size : null;
          job.chunks.push({ ...c, end });
          const p: ChunkProgress = { index: c.index, pid: null, attempts: 0, rows: 0, bytes: (end ?? c.cut!) - c.start, done_bytes: 0, state: 'pending' };
          status.chunks.push(p);
          forking = forking.then(() => fork(job, p));
        },
        chunk(c) {
          job.chunks[c.index]!.end = c.end;
          status.chunks[c.index]!.bytes = c.end - c.start;
        },
      });
      await forking;
      log('planned', { job: m.job, chunks: plan.chunks.length, size: m.size });
      status.state = 'running';
      await publish(rack, job);
      await finishIfDone(job); // a small chunk may be done already
    } catch (err) {
      status.state = 'failed';
      status.error = (err as Error).message;
      log('job failed', { job: m.job, error: status.error });
      // Children forked before planning failed have nothing to do.
      for (const pid of job.children.keys()) await rack.kill(pid, { signal: 'KILL' }).catch(() => {});
      await rack.shm.set(statusKey(m.job), status);
    }
  };

  // Children end: a chunk not done by then is forked again (its rows so far are kept; the
  // replacement's copies of them are ignored by line number).
  const reap = async (): Promise<void> => {
    for (;;) {
      if (byChild.size === 0) {
        await new Promise<void>((r) => (childForked = r));
        childForked = null;
        continue;
      }
      let w;
      try {
        w = await rack.wait(undefined, { timeout: 60 });
      } catch {
        continue;
      }
      const job = byChild.get(w.pid);
      byChild.delete(w.pid);
      if (!job) continue;
      const index = job.children.get(w.pid)!;
      job.children.delete(w.pid);
      const c = job.status.chunks[index]!;
      if (job.status.state === 'failed') continue;
      // Exit 0 means the child sent "done" first (sends are stored before they return): it is in
      // the mailbox even if not read yet. Anything else before "done" needs a replacement.
      if (c.state === 'done' || job.db!.committed(index) || (w.status === 'exited' && w.code === 0)) continue;
      log('child ended before its chunk was done; forking a replacement', { pid: w.pid, chunk: index, status: w.status, code: w.code, signal: w.signal });
      c.state = 'pending';
      await fork(job, c);
    }
  };
  void reap();

  for await (const msg of rack.messages()) {
    if (Buffer.isBuffer(msg.data)) {
      // A worker's batch of rows: decoded straight into one transaction (batch.ts, database.ts).
      let batch: BatchReader;
      try {
        batch = new BatchReader(msg.data);
      } catch (err) {
        log('not a batch of rows; dropped', { from: msg.from, error: (err as Error).message });
        continue;
      }
      const job = jobs.get(batch.header.job);
      const c = job?.status.chunks[batch.header.chunk];
      if (!job?.db || !c || job.status.state === 'failed') continue;
      job.db.insertBatch(batch);
      if (msg.from === c.pid) {
        if (c.state === 'queued') c.state = 'running';
        c.rows += batch.header.rows + batch.header.rejects;
        c.done_bytes = Math.max(c.done_bytes, batch.header.upto);
      }
      job.dirty = true;
      continue;
    }
    const m = msg.data as Message;
    // The request is acknowledged once it is planned and every child forked (the children's
    // first batches wait in the mailbox meanwhile).
    if (m.type === 'put-file') await putFile(m);
    else if (m.type === 'done') {
      const job = jobs.get(m.job);
      const c = job?.status.chunks[m.chunk];
      if (!job?.db || !c || job.status.state === 'failed') continue;
      job.db.commit(m.chunk, m.rows, m.rejects);
      c.state = 'done';
      c.rows = m.rows + m.rejects;
      c.done_bytes = c.bytes;
      job.dirty = true;
      await finishIfDone(job);
    }
  }
}

async function publish(rack: Rack, job: Job): Promise<void> {
  job.dirty = false;
  if (job.status.state === 'running') {
    job.status.rows_inserted = job.status.chunks.reduce((n, c) => n + c.rows, 0);
  }
  await rack.shm.set(statusKey(job.status.job), job.status).catch(() => (job.dirty = true));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
