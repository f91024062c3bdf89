import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { RackError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import type { KeystoneSession } from '../../openstack/keystone.js';
import { checkPath } from '../../protocol/file-path.js';
import type { FileInfo } from '../../protocol/files.js';
import type { FileBackend } from '../backend.js';
import { SwiftApi, type SloSegment } from './swift-api.js';

/** Swift's largest single object: what a segment may be at most. */
const MAX_SEGMENT = 5 * 1024 ** 3;
/** Files up to this size (or the segment size, when smaller) are read into memory and stored as one object. */
const INLINE_MAX = 8 * 1024 ** 2;
const LIST_MAX = 10_000;
/** The sha256 of a file written through RACK, kept with its object: the etag RACK shows (src/protocol/files.ts). */
const SHA256 = 'x-object-meta-rack-sha256';

export interface SwiftFilesOptions {
  session: KeystoneSession;
  /** Containers are `<prefix><gid>` and `<prefix><gid>_segments` (default prefix `rack-`). */
  containerPrefix?: string;
  /** A file bigger than this is streamed as SLO segments of this size (default 1 GiB, at most 5 GiB). */
  segmentBytes?: number;
  log?: Logger;
}

/**
 * The group file system on Swift: one container per group, a file is an object named by its path.
 * A small file is one PUT; a bigger one is streamed in segments (a container of their own) joined
 * by a Static Large Object manifest written last, so a reader sees the old file or the whole new
 * one, never a part. Reads are streamed, with ranges; listings use Swift's prefix queries.
 */
export class SwiftFiles implements FileBackend {
  private readonly api: SwiftApi;
  private readonly prefix: string;
  private readonly segmentBytes: number;
  private readonly inlineBytes: number;
  /** Containers known to exist (made at the group's first put). */
  private readonly made = new Set<string>();
  /** Bytes per group, counted once from a listing and kept up to date by put and delete. */
  private readonly used = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: SwiftFilesOptions) {
    this.api = new SwiftApi(opts.session);
    this.prefix = opts.containerPrefix ?? 'rack-';
    this.segmentBytes = opts.segmentBytes ?? 1024 ** 3;
    if (!Number.isSafeInteger(this.segmentBytes) || this.segmentBytes < 1 || this.segmentBytes > MAX_SEGMENT) {
      throw new RackError('bad_request', `the Swift segment size must be from 1 byte to 5 GiB, got ${opts.segmentBytes}`);
    }
    if (!/^[A-Za-z0-9._-]{0,64}$/.test(this.prefix)) throw new RackError('bad_request', `the Swift container prefix "${this.prefix.slice(0, 80)}" may hold only letters, digits, ".", "_" and "-" (at most 64)`);
    this.inlineBytes = Math.min(INLINE_MAX, this.segmentBytes);
    this.log = opts.log ?? silentLogger();
  }

  /** The backend for the configured cloud (RACK_SWIFT_SEGMENT_BYTES, RACK_SWIFT_CONTAINER_PREFIX), once Swift has let us in. */
  static async create(opts: { session: KeystoneSession; log?: Logger; env?: NodeJS.ProcessEnv }): Promise<SwiftFiles> {
    const env = opts.env ?? process.env;
    const seg = env.RACK_SWIFT_SEGMENT_BYTES;
    if (seg !== undefined && !/^[0-9]+$/.test(seg)) throw new RackError('bad_request', `RACK_SWIFT_SEGMENT_BYTES must be a number of bytes, got "${seg.slice(0, 40)}"`);
    const files = new SwiftFiles({ session: opts.session, log: opts.log, segmentBytes: seg === undefined ? undefined : Number(seg), containerPrefix: env.RACK_SWIFT_CONTAINER_PREFIX });
    try {
      await files.api.checkAccount();
    } catch (err) {
      await opts.session.close();
      throw err;
    }
    return files;
  }

  private container(gid: string): string {
    return `${this.prefix}${gid}`;
  }

  private segments(gid: string): string {
    return `${this.prefix}${gid}_segments`;
  }

  private async ensure(container: string): Promise<void> {
    if (this.made.has(container)) return;
    await this.api.createContainer(container);
    this.made.add(container);
  }

  /** The bytes of the group's files (an SLO file counts its whole size, as Swift's listing shows it). */
  async usage(gid: string): Promise<number> {
    let n = this.used.get(gid);
    if (n === undefined) {
      n = (await this.api.listObjects(this.container(gid), '', Infinity)).reduce((sum, o) => sum + o.bytes, 0);
      this.used.set(gid, n);
    }
    return n;
  }

  async put(gid: string, path: string, body: Readable, maxBytes: number): Promise<FileInfo> {
    checkPath(path);
    const container = this.container(gid);
    await this.ensure(container);
    const before = await this.usage(gid);
    const old = await this.api.headObject(container, path);
    const oldSegments = old?.slo ? await this.api.manifestSegments(container, path) : [];
    // What this file may hold: the quota less the other files (the file it replaces goes).
    const room = maxBytes - before + (old?.size ?? 0);
    const over = (): RackError => new RackError('quota_exceeded', `quota: the group's files may hold ${maxBytes} bytes; they hold ${before}, and this file is bigger than the ${Math.max(0, room)} bytes left`);
    const source = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let size = 0;
    for (;;) {
      const next = await source.next();
      if (next.done) {
        const data = Buffer.concat(head);
        const md5 = createHash('md5').update(data).digest('hex');
        const sha256 = createHash('sha256').update(data).digest('hex');
        await this.putOnce(container, path, () => this.api.putObject(container, path, data, { etag: md5, [SHA256]: sha256 }));
        return this.finished(gid, path, oldSegments, size - (old?.size ?? 0), before);
      }
      head.push(Buffer.from(next.value));
      size += next.value.length;
      if (size > room) {
        await source.return?.();
        throw over();
      }
      if (size > this.inlineBytes) break;
    }
    const { segments, sha256, total } = await this.putSegments(gid, path, head, source, room, over);
    try {
      const manifest = Buffer.from(JSON.stringify(segments));
      await this.putOnce(container, path, () => this.api.putObject(container, path, manifest, { [SHA256]: sha256 }, '?multipart-manifest=put'));
    } catch (err) {
      await this.deleteObjects(segments.map((s) => s.path.replace(/^\//, '')));
      throw err;
    }
    return this.finished(gid, path, oldSegments, total - (old?.size ?? 0), before);
  }

  /** A PUT whose container was deleted meanwhile (a racing deleteGroup) is made again once. */
  private async putOnce(container: string, path: string, put: () => Promise<string | null>): Promise<void> {
    if ((await put()) !== null) return;
    this.made.delete(container);
    await this.ensure(container);
    if ((await put()) === null) throw new RackError('unavailable', `Swift lost container ${container} while storing ${path}`);
  }

  /** The new file is in place: the old version's segments (it was an SLO) can go; the group's usage changes by `delta`. */
  private async finished(gid: string, path: string, oldSegments: string[], delta: number, before: number): Promise<FileInfo> {
    this.used.set(gid, Math.max(0, (this.used.get(gid) ?? before) + delta));
    await this.deleteObjects(oldSegments);
    return this.stat(gid, path);
  }

  /** Streams `head` and the rest of `source` into segments of segmentBytes; their manifest entries. */
  private async putSegments(gid: string, path: string, head: Buffer[], source: AsyncIterator<Buffer>, room: number, over: () => RackError): Promise<{ segments: SloSegment[]; sha256: string; total: number }> {
    const container = this.segments(gid);
    await this.ensure(container);
    // Named by a hash of the path (a path may be 1 KiB, Swift's limit for a whole name) and this upload.
    const base = `${createHash('sha256').update(path).digest('hex').slice(0, 24)}/${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    const done: SloSegment[] = [];
    const whole = createHash('sha256');
    let total = 0;
    type Segment = { name: string; stream: PassThrough; size: number; md5: ReturnType<typeof createHash>; put: Promise<string | null>; settled: boolean };
    let current: Segment | null = null;
    const open = (): Segment => {
      const name = `${base}/${String(done.length).padStart(8, '0')}`;
      const stream = new PassThrough();
      stream.on('error', () => {}); // a failed PUT destroys it; its error is the PUT's
      const seg: Segment = { name, stream, size: 0, md5: createHash('md5'), put: this.api.putObject(container, name, stream), settled: false };
      seg.put.then(
        () => (seg.settled = true),
        () => {
          seg.settled = true;
          stream.destroy();
        },
      );
      return seg;
    };
    const close = async (last: boolean): Promise<void> => {
      const seg = current!;
      current = null;
      seg.stream.end();
      const etag = await seg.put;
      const md5 = seg.md5.digest('hex');
      if (!last && seg.size < this.segmentBytes) throw new RackError('unavailable', `Swift ended the upload of segment ${done.length} of ${path} early`);
      if (etag === null) throw new RackError('unavailable', `Swift lost container ${container} while storing ${path}`);
      if (etag !== md5) throw new RackError('unavailable', `Swift stored segment ${done.length} of ${path} with ETag ${etag}, not the MD5 ${md5} of what was sent`);
      done.push({ path: `/${container}/${seg.name}`, etag, size_bytes: seg.size });
    };
    const write = async (chunk: Buffer): Promise<void> => {
      total += chunk.length;
      if (total > room) throw over();
      while (chunk.length > 0) {
        current ??= open();
        const part = chunk.subarray(0, this.segmentBytes - current.size);
        chunk = chunk.subarray(part.length);
        current.size += part.length;
        current.md5.update(part);
        whole.update(part);
        if (!current.stream.write(part)) await Promise.race([once(current.stream, 'drain'), current.put]);
        // Swift answered before the segment was complete: a refusal (thrown by close()), never a success
        if (current.settled || current.size === this.segmentBytes) await close(false);
      }
    };
    try {
      for (const chunk of head) await write(chunk);
      for (let next = await source.next(); !next.done; next = await source.next()) await write(Buffer.from(next.value));
      if (current) await close(true);
      if (done.length > 1000) this.log.warn({ gid, path, segments: done.length }, 'more segments than Swift allows in one manifest by default (1000): raise RACK_SWIFT_SEGMENT_BYTES');
      return { segments: done, sha256: whole.digest('hex'), total };
    } catch (err) {
      await source.return?.().catch(() => {});
      const failed = current as Segment | null;
      failed?.stream.destroy();
      await failed?.put.catch(() => null);
      await this.deleteObjects([...done.map((s) => s.path.replace(/^\//, '')), ...(failed ? [`${container}/${failed.name}`] : [])]);
      throw err;
    }
  }

  /** Deletes objects given as `container/object`, a few at a time; best effort (a leftover segment only costs space). */
  private async deleteObjects(paths: string[]): Promise<void> {
    const queue = [...paths];
    const worker = async (): Promise<void> => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        const slash = p.indexOf('/');
        await this.api.deleteObject(p.slice(0, slash), p.slice(slash + 1)).catch((err: Error) => this.log.warn({ segment: p, err: err.message }, 'cannot delete a segment'));
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, queue.length) }, worker));
  }

  async get(gid: string, path: string, range?: { start: number; end: number }): Promise<Readable> {
    const body = await this.api.getObject(this.container(gid), checkPath(path), range);
    if (!body) throw new RackError('not_found', `no file ${path}`);
    return body;
  }

  async stat(gid: string, path: string): Promise<FileInfo> {
    const head = await this.api.headObject(this.container(gid), checkPath(path));
    if (!head) throw new RackError('not_found', `no file ${path}`);
    return { path, size: head.size, etag: head.sha256 ?? head.etag, modified: isoDate(head.lastModified) };
  }

  async list(gid: string, prefix: string): Promise<FileInfo[]> {
    const objects = await this.api.listObjects(this.container(gid), prefix, LIST_MAX);
    return objects.map((o) => ({ path: o.name, size: o.bytes, etag: o.etag, modified: isoDate(o.lastModified) }));
  }

  async delete(gid: string, path: string): Promise<void> {
    const container = this.container(gid);
    const head = await this.api.headObject(container, checkPath(path));
    if (!head) throw new RackError('not_found', `no file ${path}`);
    const segments = head.slo ? await this.api.manifestSegments(container, path) : [];
    if (!(await this.api.deleteObject(container, path))) throw new RackError('not_found', `no file ${path}`);
    const n = this.used.get(gid);
    if (n !== undefined) this.used.set(gid, Math.max(0, n - head.size));
    await this.deleteObjects(segments);
  }

  /** Every object of the group, then its containers. */
  async deleteGroup(gid: string): Promise<void> {
    this.used.delete(gid);
    for (const container of [this.container(gid), this.segments(gid)]) {
      this.made.delete(container);
      for (;;) {
        const objects = await this.api.listObjects(container, '', LIST_MAX);
        if (objects.length === 0) break;
        await this.deleteObjects(objects.map((o) => `${container}/${o.name}`));
      }
      if (!(await this.api.deleteContainer(container))) this.log.warn({ gid, container }, 'a container was not empty when its group was deleted (a put in flight)');
    }
  }

  async close(): Promise<void> {
    await this.opts.session.close();
  }
}

/** Swift's dates (HTTP dates in headers, ISO without a zone in listings, both UTC) as ISO 8601. */
function isoDate(s: string): string {
  const t = Date.parse(/T[0-9:.]+$/.test(s) ? `${s}Z` : s);
  return Number.isNaN(t) ? new Date(0).toISOString() : new Date(t).toISOString();
}
