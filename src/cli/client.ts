import { request } from 'undici';
import { restError } from '../client/rest-error.js';
import { dispatcherFor } from '../client/trust.js';
import { RackError } from '../common/errors.js';

/** A small REST client for the CLI and scripts: JSON in, JSON out, errors as RackError. */
export class RestClient {
  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly timeoutMs = 60_000,
    /** A CA (PEM) to trust for an https:// kernel, beside the system's. */
    readonly ca?: string,
  ) {}

  async call<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    let res;
    try {
      res = await request(new URL(path, this.url), {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: dispatcherFor(this.ca),
        headersTimeout: timeoutMs ?? this.timeoutMs,
        bodyTimeout: timeoutMs ?? this.timeoutMs,
      });
    } catch (err) {
      throw new RackError('unavailable', `cannot reach the kernel at ${this.url}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    if (res.statusCode >= 400) throw restError(res.statusCode, text);
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new RackError('internal', `the kernel answered ${method} ${path} with something that is not JSON`);
    }
  }
}
