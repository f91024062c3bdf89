/**
 * Errors that cross an API boundary carry a stable `code` (machine-readable) and an HTTP
 * status, so the REST layer, the WebSocket layer, libdck and the CLI all report them the same way.
 */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_json'
  | 'payload_too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'no_child'
  | 'timeout'
  | 'mailbox_full'
  | 'quota_exceeded'
  | 'no_capacity'
  | 'rate_limited'
  | 'epipe'
  | 'unavailable'
  | 'compute_error'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_json: 400,
  payload_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  no_child: 404,
  timeout: 408,
  mailbox_full: 429,
  quota_exceeded: 403,
  no_capacity: 503,
  rate_limited: 429,
  epipe: 409,
  unavailable: 503,
  compute_error: 502,
  internal: 500,
};

export class RackError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'RackError';
    this.code = code;
    this.status = STATUS[code] ?? 500;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isRackError(err: unknown): err is RackError {
  return err instanceof RackError;
}
