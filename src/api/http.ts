import type { IncomingMessage, ServerResponse } from 'node:http';
import { RackError, isRackError } from '../common/errors.js';
import { encodeJson } from '../protocol/json-text.js';

export const MAX_BODY = 1024 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads a whole body of at most `limit` bytes; 413 past it (the declared length is checked first). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
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
  return Buffer.concat(chunks, size);
}

/** Reads a JSON body: 413 past the limit, 400 when it is empty, not UTF-8 or not JSON. */
export async function readJson(req: IncomingMessage, limit = MAX_BODY): Promise<unknown> {
  const buf = await readBody(req, limit);
  if (buf.length === 0) throw new RackError('invalid_json', 'body is empty: send a JSON object');
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    throw new RackError('invalid_json', 'body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RackError('invalid_json', `body is not valid JSON: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = body === undefined ? '' : encodeJson(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': typeof text === 'string' ? Buffer.byteLength(text) : text.reduce((n, b) => n + b.length, 0),
    'cache-control': 'no-store',
  });
  if (typeof text === 'string') return void res.end(text);
  for (const piece of text) res.write(piece);
  res.end();
}

/** Turns any error into the `{"error": {...}}` body; unexpected ones become 500 without details. */
export function sendError(res: ServerResponse, err: unknown): number {
  const e = isRackError(err) ? err : new RackError('internal', 'internal error');
  if (res.headersSent) {
    res.destroy();
    return e.status;
  }
  sendJson(res, e.status, { error: e.toJSON() });
  return e.status;
}
