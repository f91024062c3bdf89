// Types of guests.mjs (a plain ES module, shared with bench/).
import type { ChildProcess } from 'node:child_process';
import type { KeystoneSession } from '../../../src/openstack/keystone.js';

export interface Guest {
  child: ChildProcess;
  started: number;
  /** What the guest printed (its agent's log lines, with its app's output). */
  console: string;
  ended: string | false;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
}

export interface ListedServer {
  id: string;
  name: string;
  status: string;
  tenant_id: string;
  metadata: Record<string, string>;
}

export class GuestHost {
  constructor(opts: { session: KeystoneSession; secret: string; template: string; match: (server: ListedServer) => boolean; onLine?: (line: string) => void; pollMs?: number });
  /** Guests by server id. */
  readonly guests: Map<string, Guest>;
  start(): this;
  until(pred: () => boolean, ms?: number): Promise<void>;
  stop(): Promise<void>;
}
