import { Readable } from 'node:stream';
import { request } from 'undici';
import { restError } from '../client/rest-error.js';
import { dispatcherFor } from '../client/trust.js';
import { RackError } from '../common/errors.js';
import { checkPath } from '../protocol/file-path.js';
import type { FileInfo } from '../protocol/files.js';

/**
 * The group file system. Files travel over HTTP with the same token rather than the WebSocket:
 * HTTP gives streaming of any size with its own flow control, byte ranges, and no head-of-line
 * blocking of the process's other calls while a GiB moves.
 */
export class Files {
  constructor(
    /** The kernel to ask: the one the process's WebSocket is with (several may share a store). */
    private readonly kernel: () => string,
    private readonly token: string,
    private readonly gid: string,
    private readonly ca?: string,
  ) {}

  private where(path: string): string {
    checkPath(path);
    return `${this.kernel().replace(/\/+$/, '')}/v1/groups/${this.gid}/files/${path.split('/').map(encodeURIComponent).join('/')}`;
  }

  private async send(method: 'GET' | 'PUT' | 'HEAD' | 'DELETE', url: string, body?: Readable | Buffer | string, headers: Record<string, string> = {}) {
    const res = await request(url, { method, body, dispatcher: dispatcherFor(this.ca), headers: { authorization: `Bearer ${this.token}`, ...headers }, headersTimeout: 60_000, bodyTimeout: 0 }).catch((err: Error) => {
      throw new RackError('unavailable', `cannot reach the kernel: ${err.message}`);
    });
    if (res.statusCode >= 400) throw restError(res.statusCode, method === 'HEAD' ? '' : await res.body.text());
    return res;
  }

  async put(path: string, body: Readable | Buffer | string): Promise<FileInfo> {
    const res = await this.send('PUT', this.where(path), body, { 'content-type': 'application/octet-stream' });
    return ((await res.body.json()) as { file: FileInfo }).file;
  }

  /** A stream of the file, or of bytes start..end (inclusive). */
  async get(path: string, range: { start?: number; end?: number } = {}): Promise<Readable> {
    const headers: Record<string, string> = {};
    if (range.start !== undefined || range.end !== undefined) headers.range = `bytes=${range.start ?? 0}-${range.end ?? ''}`;
    const res = await this.send('GET', this.where(path), undefined, headers);
    return res.body as unknown as Readable;
  }

  async list(prefix = ''): Promise<FileInfo[]> {
    const res = await this.send('GET', `${this.kernel().replace(/\/+$/, '')}/v1/groups/${this.gid}/files?prefix=${encodeURIComponent(prefix)}`);
    return ((await res.body.json()) as { files: FileInfo[] }).files;
  }

  async stat(path: string): Promise<{ size: number; etag: string }> {
    const res = await this.send('HEAD', this.where(path));
    await res.body.dump();
    return { size: Number(res.headers['content-length']), etag: String(res.headers.etag ?? '').replace(/"/g, '') };
  }

  async delete(path: string): Promise<void> {
    const res = await this.send('DELETE', this.where(path));
    await res.body.dump();
  }
}
