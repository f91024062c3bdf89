/** The messages of the case study, between the operator, the File Catcher and the workers. */

/** Operator -> File Catcher: a CSV is in the group file system at `path`. */
export interface PutFile {
  type: 'put-file';
  job: string;
  path: string;
  size: number;
}

/* Worker -> File Catcher: parsed rows and rejects travel as binary messages, batch.ts. */

/** Worker -> File Catcher: the chunk is complete. */
export interface ChunkDone {
  type: 'done';
  job: string;
  chunk: number;
  rows: number;
  rejects: number;
}

/** The JSON messages (a batch of rows is bytes: batch.ts). */
export type Message = PutFile | ChunkDone;

export interface ChunkProgress {
  index: number;
  pid: number | null;
  attempts: number;
  rows: number;
  bytes: number;
  /** Bytes of the chunk whose rows have arrived. */
  done_bytes: number;
  /** queued: forked, waiting in the kernel's queue for room in the resource pool. */
  state: 'pending' | 'queued' | 'running' | 'done';
}

/** What the File Catcher publishes in shared memory under `csv:<job>`. */
export interface JobStatus {
  job: string;
  state: 'planning' | 'running' | 'done' | 'failed';
  size: number;
  chunks: ChunkProgress[];
  forks: number;
  /** Forks the pool could not hold at once: they waited in the kernel's queue. */
  queued: number;
  /** Room in the resource pool (instances) when the job was planned; null: unbounded. */
  pool_free: number | null;
  rows_inserted: number;
  rows_rejected: number;
  checksum: string | null;
  reject_lines: number[] | null;
  error: string | null;
  started_at: number;
  finished_at: number | null;
}

export const statusKey = (job: string): string => `csv:${job}`;
