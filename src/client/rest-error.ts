import { RackError, type ErrorCode } from '../common/errors.js';

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'timeout',
  409: 'conflict',
  413: 'payload_too_large',
  416: 'bad_request',
  429: 'rate_limited',
};

/**
 * The kernel's error answer (`{"error": {"code", "message"}}`) as a RackError with the kernel's
 * own code; an answer that is not one (a proxy's HTML page) keeps its HTTP status as the code.
 */
export function restError(status: number, body: string): RackError {
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') return new RackError(e.code as ErrorCode, e.message);
  } catch {
    /* not JSON: below */
  }
  const code = BY_STATUS[status] ?? (status >= 500 ? 'unavailable' : 'internal');
  return new RackError(code, `HTTP ${status}${body ? `: ${body.replace(/\s+/g, ' ').slice(0, 200)}` : ''}`);
}
