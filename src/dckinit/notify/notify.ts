import { sdNotify } from '../../common/sd-notify.js';

/**
 * sd_notify(3) for systemd's Type=notify. Node has no unix datagram sockets, so the message goes
 * through systemd's own `systemd-notify` tool (see sdNotify). It is a short-lived helper process, and systemd
 * attributes a notification by the sender's PID: `--pid=` names the agent as the main PID and the
 * unit's NotifyAccess=all accepts the helper's message even if it has exited by the time systemd
 * reads it. Without NOTIFY_SOCKET (not under systemd) every call is a no-op.
 */
export class Notifier {
  private readonly socket = process.env.NOTIFY_SOCKET;
  private watchdog: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();

  get enabled(): boolean {
    return Boolean(this.socket);
  }

  /** Sends one notification (e.g. {READY: '1', STATUS: 'running'}); sends are kept in order. */
  notify(fields: Record<string, string>): Promise<void> {
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    // A notification that cannot be sent is no reason to stop: systemd's timeouts tell.
    this.chain = this.chain.then(() => sdNotify(socket, fields, { pid: process.pid }).catch(() => {}));
    return this.chain;
  }

  /** WATCHDOG=1 at half of WatchdogSec=, when the unit sets it for this process. */
  startWatchdog(): void {
    const usec = Number(process.env.WATCHDOG_USEC ?? 0);
    const forPid = process.env.WATCHDOG_PID;
    if (!this.socket || !usec || (forPid && Number(forPid) !== process.pid)) return;
    const every = Math.max(100, usec / 1000 / 2);
    void this.notify({ WATCHDOG: '1' });
    this.watchdog = setInterval(() => void this.notify({ WATCHDOG: '1' }), every);
    this.watchdog.unref();
  }

  stop(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }
}
