import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { kernelUrls } from '../client/kernel-urls.js';
import { restError } from '../client/rest-error.js';
import { RackError } from '../common/errors.js';

/** Errors of a connection that was never made: the request did not reach that kernel. */
const UNREACHED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * A small REST client for the CLI and scripts: JSON in, JSON out, errors as RackError.
 *
 * It speaks through Node's own http/https rather than undici: a `rack` command is a short-lived
 * process, and loading undici took longer than most commands' round trips (`rack ps` of 10,000
 * processes spent more time starting than waiting for the kernel). https is loaded only for an
 * https:// kernel.
 */
export class RestClient {
  private https: Promise<typeof import('node:https')> | undefined;
  private agent: HttpsAgent | undefined;
  private readonly urls: string[];
  private current = 0;

  /** `urls`: a kernel's URL, or several kernels' on one store, comma-separated (tried in turn while one cannot be reached). */
  constructor(
    urls: string,
    private readonly token: string,
    private readonly timeoutMs = 60_000,
    /** A CA (PEM) to trust for an https:// kernel, in place of the system's (as undici's `connect.ca`). */
    readonly ca?: string,
  ) {
    this.urls = kernelUrls(urls);
  }

  /** The kernel this client speaks to now. */
  get url(): string {
    return this.urls[this.current]!;
  }

  async call<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { authorization: `Bearer ${this.token}` };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const limit = timeoutMs ?? this.timeoutMs;
    let status = 0;
    let text = '';
    for (let tried = 1; ; tried++) {
      const at = this.current;
      try {
        ({ status, text } = await this.send(new URL(path, this.urls[at]), { method, headers }, payload, limit));
        break;
      } catch (err) {
        // Only a kernel that never got the request is left for the next: a call sent twice could be done twice.
        if (UNREACHED.has((err as NodeJS.ErrnoException).code ?? '') && tried < this.urls.length) {
          // Calls made at once find the same kernel away: the first to hear of it moves them all on.
          if (this.current === at) this.current = (at + 1) % this.urls.length;
          continue;
        }
        throw new RackError('unavailable', `cannot reach the kernel at ${this.urls[at]}: ${(err as Error).message}`);
      }
    }
    if (status >= 400) throw restError(status, text);
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new RackError('internal', `the kernel answered ${method} ${path} with something that is not JSON`);
    }
  }

  /** One request; the answer's status and body. The socket may stay quiet at most `timeoutMs` at a time. */
  private async send(url: URL, opts: RequestOptions, payload: Buffer | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
    let start: (u: URL, o: RequestOptions, cb: (res: IncomingMessage) => void) => ClientRequest = httpRequest;
    if (url.protocol === 'https:') {
      const https = await (this.https ??= import('node:https'));
      if (this.ca) this.agent ??= new https.Agent({ keepAlive: true, ca: this.ca });
      opts = { ...opts, agent: this.agent ?? https.globalAgent };
      start = https.request;
    } else if (url.protocol !== 'http:') {
      throw new Error(`unsupported protocol ${url.protocol}`);
    }
    return new Promise((resolve, reject) => {
      const req = start(url, opts, (res) => {
        // Bytes kept as they come and decoded once: a list of 10,000 processes is megabytes, and
        // a string grown a chunk at a time costs the parse and the collector more than the copy.
        // With its length known, the body goes into one buffer as it arrives, while the rest is
        // still on its way, rather than joined after the last chunk (17-35 ms for 3.5 MB here).
        // (Node's HTTP parser never hands on more than the declared length.)
        const length = Number(res.headers['content-length']);
        const body = Number.isSafeInteger(length) && length > 0 ? Buffer.allocUnsafe(length) : null;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (body) c.copy(body, size);
          else chunks.push(c);
          size += c.length;
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, text: (body ? body.subarray(0, size) : Buffer.concat(chunks)).toString('utf8') }));
        res.once('error', reject);
        res.once('close', () => {
          if (!res.complete) reject(new Error('the answer was cut off'));
        });
      });
      req.once('error', reject);
      if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)));
      req.end(payload);
    });
  }
}
