import type { IncomingMessage, ServerResponse } from 'node:http';
import { RackError, isRackError } from '../common/errors.js';

export const MAX_BODY = 1024 * 1024;

/** Reads a JSON body of at most `limit` bytes; 413 past it, 400 when it is not JSON. */
export async function readJson(req: IncomingMessage, limit = MAX_BODY): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new RackError('payload_too_large', `body is larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  // A client that stops half-way through its body must not hold the request open for ever.
  const timer = setTimeout(() => req.destroy(new RackError('timeout', 'the request body did not arrive in time')), 30_000);
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
      if (size > limit) {
        req.resume();
        throw new RackError('payload_too_large', `body is larger than ${limit} bytes`);
      }
      chunks.push(chunk);
    }
  } finally {
    clearTimeout(timer);
  }
  if (size === 0) throw new RackError('invalid_json', 'body is empty: send a JSON object');
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new RackError('invalid_json', `body is not valid JSON: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Turns any error into the `{"error": {...}}` body; unexpected ones become 500 without details. */
export function sendError(res: ServerResponse, err: unknown): number {
  const e = isRackError(err) ? err : new RackError('internal', 'internal error');
  sendJson(res, e.status, { error: e.toJSON() });
  return e.status;
}

/** A path or query integer: digits only, within 0..2^31-1 (no sign, fraction or exponent). */
export function parseId(value: string | null | undefined, what: string): number {
  if (value === null || value === undefined || !/^[0-9]{1,10}$/.test(value) || Number(value) > 2147483647) {
    throw new RackError('bad_request', `${what} must be a non-negative integer, got "${String(value).slice(0, 40)}"`);
  }
  return Number(value);
}

/** Seconds as a number within [0, max], converted to milliseconds. */
export function parseSeconds(value: string | null, what: string, fallback: number, max: number): number {
  if (value === null) return fallback * 1000;
  if (!/^[0-9]{1,6}(\.[0-9]{1,3})?$/.test(value) || Number(value) > max) {
    throw new RackError('bad_request', `${what} must be a number of seconds from 0 to ${max}, got "${value.slice(0, 40)}"`);
  }
  return Math.round(Number(value) * 1000);
}
