import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface RequestOptions {
  method?: 'GET' | 'DELETE';
  headers?: Record<string, string>;
  /** Whole-request deadline: connecting, headers and a body that trickles in. */
  timeoutMs: number;
  /** Larger bodies are refused (declared or counted). */
  maxBytes: number;
  signal?: AbortSignal;
}

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Why a request failed: `code` says which way, so callers can tell a retryable failure. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly code: 'timeout' | 'too_large' | 'network' | 'aborted',
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

/**
 * One small HTTP(S) request with a hard deadline and a body cap, on Node's own http module.
 * The guest agent needs nothing more, and undici alone would add ~20 MiB to its resident memory
 * in every VM.
 */
export function request(url: string, opts: RequestOptions): Promise<Response> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: RequestError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      req.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(new RequestError('aborted', 'aborted'));
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(u, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > opts.maxBytes) return fail(new RequestError(`body of ${declared} bytes is over the ${opts.maxBytes}-byte limit`, 'too_large'));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > opts.maxBytes) return fail(new RequestError(`body is over the ${opts.maxBytes}-byte limit`, 'too_large'));
        chunks.push(c);
      });
      res.on('error', (err) => fail(new RequestError(err.message, 'network')));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    const timer = setTimeout(() => fail(new RequestError(`no complete answer within ${opts.timeoutMs} ms`, 'timeout')), opts.timeoutMs);
    req.on('error', (err) => fail(new RequestError(err.message, 'network')));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}
