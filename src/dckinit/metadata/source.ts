import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../../common/log.js';
import { DEFAULT_LIMITS, MetadataError, type FetchLimits } from './http-reader.js';
import { readConfigDrive, readService, type InstanceData } from './openstack.js';

/** Nova's link-local addresses, tried together as cloud-init does. */
export const LINK_LOCAL = ['http://169.254.169.254', 'http://[fe80::a9fe:a9fe]'];

export interface SourceOptions {
  /** Metadata services to try at once; the first that answers wins. */
  urls: string[];
  /** A directory with a config drive's layout, or null to look for a disk labelled config-2. */
  configDrive: string | null;
  /** Overall deadline for the services before falling back to a config drive. */
  deadlineMs: number;
  limits?: FetchLimits;
  /** First retry delay; doubled each time with ±50 % jitter, capped at 10 s. */
  backoffMs?: number;
  log: Logger;
}

/** Waits `ms`, or less when aborted; its abort listener goes with it (retries would pile them up). */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** One URL with retries until the deadline; non-retryable errors (bad JSON, 4xx, too big) stop at once. */
async function withRetries(url: string, opts: SourceOptions, signal: AbortSignal): Promise<InstanceData> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  let delay = opts.backoffMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await readService(url, limits, signal);
    } catch (err) {
      const e = err instanceof MetadataError ? err : new MetadataError(String(err), true);
      if (signal.aborted) throw new MetadataError(`${url}: gave up after ${opts.deadlineMs} ms and ${attempt} attempts (last: ${e.message})`, false);
      if (!e.retryable) throw e;
      opts.log.debug({ url, attempt, err: e.message }, 'metadata not ready; retrying');
      await sleep(delay * (0.5 + Math.random()), signal);
      if (signal.aborted) throw e;
      delay = Math.min(delay * 2, 10_000);
    }
  }
}

/** Finds and mounts (read-only) a filesystem labelled config-2, if this machine has one. */
async function mountConfigDrive(log: Logger): Promise<string | null> {
  const dev = '/dev/disk/by-label/config-2';
  if (!existsSync(dev)) return null;
  const dir = mkdtempSync(join(tmpdir(), 'config-2-'));
  try {
    await promisify(execFile)('mount', ['-o', 'ro', dev, dir]);
    return dir;
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot mount the config drive');
    return null;
  }
}

/**
 * The policy: every metadata service at once, each with retries and backoff, within one overall
 * deadline; then a config drive. The first good answer wins; a definite error (not a time-out)
 * from every source is reported as such.
 */
export async function readInstanceData(opts: SourceOptions): Promise<InstanceData> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.deadlineMs);
  const errors: string[] = [];
  try {
    if (opts.urls.length > 0) {
      const attempts = opts.urls.map((u) =>
        withRetries(u, opts, controller.signal).catch((err: Error) => {
          errors.push(err.message);
          throw err;
        }),
      );
      try {
        const found = await Promise.any(attempts);
        controller.abort();
        return found;
      } catch {
        // every service failed: try the config drive
      }
    }
  } finally {
    clearTimeout(timer);
  }
  const drive = opts.configDrive ?? (await mountConfigDrive(opts.log));
  if (drive) {
    try {
      return await readConfigDrive(drive);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  throw new MetadataError(`no metadata: ${errors.join('; ') || 'no metadata service or config drive found'}`, false);
}
