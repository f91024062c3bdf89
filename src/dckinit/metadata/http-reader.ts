import { request } from 'undici';

/** Why a metadata read failed; `retryable` tells the policy whether trying again can help. */
export class MetadataError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'MetadataError';
  }
}

export interface FetchLimits {
  /** Whole-request deadline: a body that trickles in still ends in time. */
  timeoutMs: number;
  maxBytes: number;
}

export const DEFAULT_LIMITS: FetchLimits = { timeoutMs: 5000, maxBytes: 1024 * 1024 };

/** GET one metadata document; null for 404 (an optional document, such as user_data). */
export async function fetchText(url: string, limits: FetchLimits = DEFAULT_LIMITS, signal?: AbortSignal): Promise<string | null> {
  const deadline = AbortSignal.timeout(limits.timeoutMs);
  const both = signal ? AbortSignal.any([deadline, signal]) : deadline;
  let res;
  try {
    res = await request(url, { method: 'GET', signal: both, headersTimeout: limits.timeoutMs, bodyTimeout: limits.timeoutMs });
  } catch (err) {
    throw new MetadataError(`${url}: ${deadline.aborted ? `no answer within ${limits.timeoutMs} ms` : (err as Error).message}`, true);
  }
  // Aborting mid-body makes the stream emit an error; we report our own instead.
  res.body.on('error', () => {});
  try {
    if (res.statusCode === 404) return null;
    if (res.statusCode >= 500) throw new MetadataError(`${url}: HTTP ${res.statusCode}`, true);
    if (res.statusCode !== 200) throw new MetadataError(`${url}: HTTP ${res.statusCode}`, false);
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > limits.maxBytes) throw new MetadataError(`${url}: body of ${declared} bytes is over the ${limits.maxBytes}-byte limit`, false);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limits.maxBytes) throw new MetadataError(`${url}: body is over the ${limits.maxBytes}-byte limit`, false);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    if (err instanceof MetadataError) throw err;
    throw new MetadataError(`${url}: ${deadline.aborted ? `body did not arrive within ${limits.timeoutMs} ms` : (err as Error).message}`, true);
  } finally {
    res.body.destroy();
  }
}
