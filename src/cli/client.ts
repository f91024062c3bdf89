import { request } from 'undici';
import { RackError, type ErrorCode } from '../common/errors.js';

/** A small REST client for the CLI and scripts: JSON in, JSON out, errors as RackError. */
export class RestClient {
  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly timeoutMs = 60_000,
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
        headersTimeout: timeoutMs ?? this.timeoutMs,
        bodyTimeout: timeoutMs ?? this.timeoutMs,
      });
    } catch (err) {
      throw new RackError('unavailable', `cannot reach the kernel at ${this.url}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    const data: unknown = text ? safeJson(text) : undefined;
    if (res.statusCode >= 400) {
      const e = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
      const err = new RackError((e?.code as ErrorCode) ?? 'internal', e?.message ?? `HTTP ${res.statusCode}`);
      (err as { status: number }).status = res.statusCode;
      throw err;
    }
    return data as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { error: { code: 'internal', message: text.slice(0, 200) } };
  }
}
