/**
 * The WebSocket protocol at `/v1/ws` (JSON text frames; see docs/protocol.md).
 *
 * The client authenticates with `Authorization: Bearer <token>` on the upgrade request.
 * Requests:  {"id": 7, "op": "fork", ...params}
 * Replies:   {"id": 7, "ok": true, "result": {...}}  or  {"id": 7, "ok": false, "error": {"code", "message"}}
 * Events:    {"event": "process", ...}  (pushed by the kernel, no id)
 */
import type { SignalName } from './process.js';

export const WS_PATH = '/v1/ws';

export interface RequestFrame {
  id: number;
  op: string;
  [key: string]: unknown;
}

export interface ReplyFrame {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

/** The kernel asks a guest agent to signal its app (TERM, INT, HUP, USR1, USR2, STOP, CONT). */
export interface SignalEvent {
  event: 'signal';
  signal: Exclude<SignalName, 'KILL'>;
  /** Set when the signal is a kill(TERM) with a grace period: the VM is destroyed after it. */
  grace_ms?: number;
}

