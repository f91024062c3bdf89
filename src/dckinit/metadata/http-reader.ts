import { request, type RequestError } from '../http/request.js';

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
  let res;
  try {
    res = await request(url, { timeoutMs: limits.timeoutMs, maxBytes: limits.maxBytes, signal });
  } catch (err) {
    const e = err as RequestError;
    throw new MetadataError(`${url}: ${e.message}`, e.code !== 'too_large');
  }
  if (res.status === 404) return null;
  if (res.status >= 500) throw new MetadataError(`${url}: HTTP ${res.status}`, true);
  if (res.status !== 200) throw new MetadataError(`${url}: HTTP ${res.status}`, false);
  return res.body.toString('utf8');
}
