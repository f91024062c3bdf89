import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { RackError } from '../common/errors.js';
import { checkPath } from '../protocol/file-path.js';
import type { FileInfo } from '../protocol/files.js';
import type { FileBackend } from './backend.js';

/**
 * Files in `ROOT/<gid>/` (ROOT: DATA/files, or a directory kernels on one store share); a put goes
 * to a temporary file renamed into place when complete.
 */
export class LocalFiles implements FileBackend {
  /** Bytes per group, counted once from the disk and kept up to date by put and delete. */
  private readonly used = new Map<string, number>();

  /** `shared`: other kernels write to `root` too, so a group's usage is counted from the disk each time. */
  constructor(
    private readonly root: string,
    private readonly opts: { shared?: boolean } = {},
  ) {}

  async usage(gid: string): Promise<number> {
    let n = this.opts.shared ? undefined : this.used.get(gid);
    if (n === undefined) {
      n = (await this.list(gid, '', Infinity)).reduce((sum, f) => sum + f.size, 0);
      if (!this.opts.shared) this.used.set(gid, n);
    }
    return n;
  }

  private where(gid: string, path: string): string {
    return join(this.root, gid, 'f', checkPath(path));
  }

  async put(gid: string, path: string, body: Readable, maxBytes: number): Promise<FileInfo> {
    const target = this.where(gid, path);
    const before = await this.usage(gid);
    const old = await stat(target).then((st) => (st.isFile() ? st.size : 0), () => 0);
    const room = maxBytes - before + old;
    const tmpDir = join(this.root, gid, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    await mkdir(dirname(target), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EEXIST' || err.code === 'ENOTDIR' ? new RackError('conflict', `a file is in the way of ${path}`) : err;
    });
    const tmp = join(tmpDir, randomBytes(8).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        if (size > room) return cb(new RackError('quota_exceeded', `quota: the group's files may hold ${maxBytes} bytes; they hold ${before}, and this file is bigger than the ${Math.max(0, room)} bytes left`));
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, tap, createWriteStream(tmp));
      await rename(tmp, target).catch((err: NodeJS.ErrnoException) => {
        throw err.code === 'EISDIR' || err.code === 'ENOTEMPTY' ? new RackError('conflict', `${path} is a directory`) : err;
      });
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const st = await stat(target);
    if (!this.opts.shared) this.used.set(gid, (this.used.get(gid) ?? before) + size - old);
    return { path, size, etag: hash.digest('hex'), modified: st.mtime.toISOString() };
  }

  async get(gid: string, path: string, range?: { start: number; end: number }): Promise<Readable> {
    await this.stat(gid, path);
    return createReadStream(this.where(gid, path), range ? { start: range.start, end: range.end } : {});
  }

  async stat(gid: string, path: string): Promise<FileInfo> {
    try {
      const st = await stat(this.where(gid, path));
      if (!st.isFile()) throw new RackError('not_found', `no file ${path}`);
      return { path, size: st.size, etag: `${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}`, modified: st.mtime.toISOString() };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new RackError('not_found', `no file ${path}`);
      throw err;
    }
  }

  async list(gid: string, prefix: string, most = 10_000): Promise<FileInfo[]> {
    const base = join(this.root, gid, 'f');
    const out: FileInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const full = join(dir, e.name);
        const rel = relative(base, full).split(sep).join('/');
        if (e.isDirectory()) {
          if (rel.startsWith(prefix) || prefix.startsWith(rel + '/')) await walk(full);
        } else if (e.isFile() && rel.startsWith(prefix)) {
          out.push(await this.stat(gid, rel));
          if (out.length >= most) return;
        }
      }
    };
    await walk(base);
    return out.sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  async delete(gid: string, path: string): Promise<void> {
    const st = await this.stat(gid, path);
    await rm(this.where(gid, path), { force: true });
    const n = this.used.get(gid);
    if (n !== undefined) this.used.set(gid, Math.max(0, n - st.size));
  }

  async deleteGroup(gid: string): Promise<void> {
    this.used.delete(gid);
    await rm(join(this.root, gid), { recursive: true, force: true });
  }
}
