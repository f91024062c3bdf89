import { randomBytes } from 'node:crypto';
import { RackError, type ErrorCode } from '../common/errors.js';
import { sdNotify } from '../common/sd-notify.js';
import type { Process, SignalName, WaitResult } from '../protocol/process.js';
import type { GroupUsage, PoolView, ProcessUsage, QueuedFork } from '../protocol/resources.js';
import { KernelSocket } from '../client/kernel-socket.js';
import { readCa } from '../client/ca.js';
import { Files } from './files.js';
import { receive, type Message } from './messages.js';
import { Pipe } from './pipes.js';
import { SharedMemory } from './shm.js';

/** At most this many messages in one send frame. */
const SEND_BATCH = 256;

export interface ConnectOptions {
  url?: string;
  token?: string;
  /** A CA (PEM text) to trust for an https kernel; default the file RACK_CA names (dckinit sets it). */
  ca?: string;
  /** Default per-call timeout in milliseconds (30 s). */
  timeoutMs?: number;
}

export interface ForkOptions {
  count?: number;
  args?: Record<string, string>;
  template?: string;
  flavor?: string;
  name?: string;
  /** Wait (up to this many seconds) until every child's app runs. */
  waitRunning?: number;
  /** Wait (up to this many seconds) until every child's app is ready (READY=1, or started when it does not use readiness). */
  waitReady?: number;
  /** Queue order when the resource pools are full: higher boots first (default 0). */
  priority?: number;
  /** Seconds a queued child waits for capacity before it ends in ERROR (default: as long as it takes). */
  timeout?: number;
  /** Fail with no_capacity instead of queueing. */
  noQueue?: boolean;
}

/** A process's view of RACK: who it is, and its system calls. Make one with `connect()`. */
export class Rack {
  readonly shm: SharedMemory;
  readonly files: Files;
  private mids = 0;
  private readonly client = randomBytes(6).toString('hex');
  private readonly outbox: Array<{ message: { to: number; data?: unknown; mid: string }; payload?: Buffer; resolve(seq: number): void; reject(err: Error): void }> = [];
  /** Send frames unanswered; while any is, new messages wait to go together. */
  private sending = 0;
  private flushQueued = false;

  constructor(
    private readonly conn: KernelSocket,
    readonly self: Process,
    readonly url: string,
    token: string,
    ca?: string,
  ) {
    this.shm = new SharedMemory(conn);
    this.files = new Files(() => conn.url, token, self.gid, ca);
  }

  get gid(): string {
    return this.self.gid;
  }
  get pid(): number {
    return this.self.pid;
  }
  get ppid(): number | null {
    return this.self.ppid;
  }
  /** The role the guest agent chose (RACK_ROLE): "parent" when PPID is null, else "child". */
  get role(): string {
    return process.env.RACK_ROLE || (this.self.ppid === null ? 'parent' : 'child');
  }
  /** This process's args (as given at fork, inherited from its parent). */
  get args(): Record<string, string> {
    return this.self.args;
  }

  /** New child VMs; those the resource pools cannot hold yet are QUEUED and boot when capacity frees up. */
  async fork(opts: ForkOptions = {}): Promise<Process[]> {
    const { waitRunning, waitReady, noQueue, ...rest } = opts;
    const params: Record<string, unknown> = { ...rest };
    if (waitRunning !== undefined) params.wait_running = waitRunning;
    if (waitReady !== undefined) params.wait_ready = waitReady;
    if (noQueue !== undefined) params.no_queue = noQueue;
    const r = await this.conn.call('fork', params, { timeoutMs: (waitReady ?? waitRunning ?? 0) * 1000 + this.conn.timeoutMs });
    return r.processes as Process[];
  }

  /** Ends `pid` and its descendants: TERM with a grace period (seconds), or KILL. */
  async kill(pid: number, opts: { signal?: 'TERM' | 'KILL'; grace?: number } = {}): Promise<number[]> {
    return (await this.conn.call('kill', { pid, ...opts })).pids as number[];
  }

  async signal(pid: number, name: Exclude<SignalName, 'KILL'>): Promise<void> {
    await this.conn.call('signal', { pid, name });
  }

  /** How a child ended: `pid`, or any child. Waits as long as it takes unless `timeout` (seconds) is given. */
  async wait(pid?: number, opts: { timeout?: number } = {}): Promise<WaitResult> {
    const deadline = opts.timeout === undefined ? Infinity : Date.now() + opts.timeout * 1000;
    for (;;) {
      const left = Math.min(300, Math.max(0, (deadline - Date.now()) / 1000));
      try {
        return await this.conn.call<WaitResult>('wait', { ...(pid === undefined ? {} : { pid }), timeout: left }, { timeoutMs: left * 1000 + this.conn.timeoutMs });
      } catch (err) {
        if (!(err instanceof RackError && err.code === 'timeout') || Date.now() >= deadline) throw err;
      }
    }
  }

  async status(text: string): Promise<void> {
    await this.conn.call('status', { app_status: text });
  }

  async list(opts: { ppid?: number } = {}): Promise<Process[]> {
    return (await this.conn.call('list', opts)).processes as Process[];
  }

  /**
   * Tells RACK this app is ready (and, optionally, its status), the systemd way: READY=1 on the
   * NOTIFY_SOCKET its guest agent gave it, as `systemd-notify --ready` or any sd_notify library.
   */
  async ready(status?: string): Promise<void> {
    const socket = process.env.NOTIFY_SOCKET;
    if (!socket) throw new RackError('bad_request', 'no NOTIFY_SOCKET: ready() works in an app started by dckinit');
    await sdNotify(socket, { READY: '1', ...(status === undefined ? {} : { STATUS: status }) });
  }

  /** What a process of the group (this one by default) uses: its latest sample and `history` before it. */
  async usage(pid?: number, opts: { history?: number } = {}): Promise<ProcessUsage> {
    return this.conn.call<ProcessUsage>('usage', { pid: pid ?? this.pid, ...(opts.history ? { history: opts.history } : {}) });
  }

  /** The group's roll-up: sums over its processes' latest samples, each process's usage, IPC counters. */
  async groupUsage(opts: { history?: number } = {}): Promise<GroupUsage> {
    return this.conn.call<GroupUsage>('usage.group', opts.history ? { history: opts.history } : {});
  }

  /** The resource pools this group's forks are scheduled against, and its queued forks. */
  async pool(): Promise<{ kernel: PoolView; group: PoolView; queue: QueuedFork[] }> {
    return this.conn.call('pool.show');
  }

  /**
   * Sends a JSON value or bytes to a process of the group; stored before this resolves. JSON
   * messages sent while earlier ones are still unanswered travel together in one frame (and one
   * commit in the kernel), in order: a sender that keeps many in flight gets throughput, one that
   * waits for each gets the lowest latency.
   */
  async send(pid: number, data: unknown): Promise<number> {
    const mid = `${this.client}-${++this.mids}`;
    if (data === undefined) throw new RackError('bad_request', 'a message needs data (JSON), or bytes');
    const bytes = Buffer.isBuffer(data) || data instanceof Uint8Array ? Buffer.from(data) : undefined;
    return new Promise<number>((resolve, reject) => {
      // Bytes travel alone in a binary frame, but wait their turn: per-sender order holds.
      this.outbox.push({ message: bytes ? { to: pid, mid } : { to: pid, data, mid }, payload: bytes, resolve, reject });
      if (this.sending === 0) this.flushOutbox();
      else if (!this.flushQueued) {
        this.flushQueued = true;
        setImmediate(() => {
          this.flushQueued = false;
          this.flushOutbox();
        });
      }
    });
  }

  private flushOutbox(): void {
    let n = 0;
    while (n < this.outbox.length && n < SEND_BATCH && !this.outbox[n]!.payload) n++;
    const batch = this.outbox.splice(0, Math.max(n, 1));
    if (batch.length === 0) return;
    this.sending++;
    const done = (): void => {
      this.sending--;
      if (this.outbox.length > 0) this.flushOutbox();
    };
    if (batch.length === 1) {
      const [one] = batch;
      this.conn.call('send', one!.message, { payload: one!.payload }).then((r: { seq: number }) => one!.resolve(r.seq), one!.reject).finally(done);
      return;
    }
    this.conn
      .call('send.batch', { messages: batch.map((b) => b.message) })
      .then(
        (r: { results: Array<{ seq?: number; error?: { code: ErrorCode; message: string } }> }) =>
          batch.forEach((b, i) => {
            const x = r.results[i];
            if (x?.seq !== undefined) b.resolve(x.seq);
            else b.reject(new RackError(x?.error?.code ?? 'internal', x?.error?.message ?? 'no answer for this message'));
          }),
        (err: Error) => batch.forEach((b) => b.reject(err)),
      )
      .finally(done);
  }

  /** This process's messages, each once, in send order per sender. */
  messages(opts: { window?: number } = {}): AsyncGenerator<Message> {
    return receive(this.conn, opts.window);
  }

  /** A new anonymous pipe (children forked afterwards inherit it), or an inherited one by id. */
  async pipe(id?: string): Promise<Pipe> {
    if (id !== undefined) return new Pipe(this.conn, id);
    return new Pipe(this.conn, (await this.conn.call('pipe.create')).pipe as string);
  }

  /** The anonymous pipes this process created or inherited. */
  async pipes(): Promise<Pipe[]> {
    const ids = (await this.conn.call('pipe.list')).pipes as string[];
    return ids.map((id) => new Pipe(this.conn, id));
  }

  async fifo(name: string): Promise<Pipe> {
    return new Pipe(this.conn, (await this.conn.call('fifo.open', { name })).pipe as string);
  }

  close(): void {
    this.conn.close();
  }

  /** Ends this app with `code`, as exit(3) does; the guest agent reports it to the kernel. */
  exit(code: number): never {
    this.close();
    process.exit(code);
  }
}

/** Connects this process to RACK from its RACK_* environment (or explicit options). */
export async function connect(opts: ConnectOptions = {}): Promise<Rack> {
  const url = opts.url ?? process.env.RACK_URL;
  const token = opts.token ?? process.env.RACK_TOKEN;
  if (!url) throw new RackError('bad_request', 'no RACK_URL: run inside a RACK VM (dckinit sets it) or pass { url }');
  if (!token) throw new RackError('bad_request', 'no RACK_TOKEN: run inside a RACK VM (dckinit sets it) or pass { token }');
  const ca = opts.ca ?? readCa(process.env.RACK_CA);
  const conn = new KernelSocket({ url, token, ca, role: 'app', timeoutMs: opts.timeoutMs });
  const hello = (await conn.open()) as { process?: Process };
  if (!hello.process) {
    conn.close();
    throw new RackError('bad_request', 'connect() needs a process token; operators use the rack CLI or the REST API');
  }
  return new Rack(conn, hello.process, url, token, ca);
}
