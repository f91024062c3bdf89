import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { JobStatus, PutFile } from './protocol.js';
import { statusKey } from './protocol.js';

/** The template (VM image) of the case study: this example's own directory, by its name. */
export const TEMPLATE = 'csv-processing';
/** Where the template lives: the directory a kernel is given with --templates. */
export const TEMPLATES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Target {
  url: string;
  token: string;
  gid: string;
}

async function api<T>(t: Target, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const res = await request(`${t.url}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: timeoutMs,
  });
  const text = await res.body.text();
  const data = text ? JSON.parse(text) : undefined;
  if (res.statusCode >= 400) throw new Error(`${method} ${path}: ${data?.error?.message ?? res.statusCode}`);
  return data as T;
}

/**
 * `csv-processing start-daemon`: boots the parent process through RACK (slide 14): its VM runs
 * the File Catcher and the Target Database. Resolves with its PID once the app runs.
 */
export async function startDaemon(t: Target, opts: { chunkSize?: number; maxChildren?: number; template?: string } = {}): Promise<number> {
  const args: Record<string, string> = {};
  if (opts.chunkSize) args.chunk_size = String(opts.chunkSize);
  if (opts.maxChildren) args.max_children = String(opts.maxChildren);
  const { processes } = await api<{ processes: Array<{ pid: number }> }>(t, 'POST', `/v1/groups/${t.gid}/processes`, { process: { name: 'file-catcher', template: opts.template ?? TEMPLATE, args } });
  const pid = processes[0]!.pid;
  // A real guest boots a whole OS first, on a busy machine maybe slowly.
  await api(t, 'GET', `/v1/groups/${t.gid}/processes/${pid}/running?timeout=300`, undefined, 310_000);
  return pid;
}

/**
 * `csv-processing put-file FILE` (slide 15): stores the CSV in the group file system and hands it
 * to the File Catcher, which forks the children. Resolves with the job id.
 */
export async function putFile(t: Target, catcherPid: number, file: string): Promise<string> {
  const { size } = await stat(file);
  const job = `${basename(file).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
  const path = `inbox/${job}.csv`;
  const res = await request(`${t.url}/v1/groups/${t.gid}/files/${path}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/octet-stream' },
    body: createReadStream(file),
    bodyTimeout: 0,
  });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`storing ${file} failed: HTTP ${res.statusCode}`);
  const msg: PutFile = { type: 'put-file', job, path, size };
  await api(t, 'POST', `/v1/groups/${t.gid}/processes/${catcherPid}/messages`, { message: { data: msg } });
  return job;
}

/** The job's status as the File Catcher publishes it, or null before it has planned. */
export async function jobStatus(t: Target, job: string): Promise<JobStatus | null> {
  const r = await api<{ value: JobStatus | null }>(t, 'GET', `/v1/groups/${t.gid}/shm/${encodeURIComponent(statusKey(job))}`);
  return r.value;
}
