import type { Authenticator, Revoked } from '../auth/auth.js';
import type { Logger } from '../common/log.js';
import type { Messaging } from '../ipc/messaging.js';
import type { Pipes } from '../ipc/pipes.js';
import type { SharedMemory } from '../ipc/shared-memory.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Monitor } from '../monitor/monitor.js';
import type { Process } from '../protocol/process.js';
import { RECHECK_MS, type BusMessage, type KernelBus } from '../bus/bus.js';

export interface BridgedParts {
  kernel: Kernel;
  messaging: Messaging;
  shm: SharedMemory;
  pipes: Pipes;
  monitor: Monitor;
  auth: Authenticator;
  log: Logger;
}

/**
 * Connects this kernel's parts to the bus: what changes here is published for the other kernels
 * on the store (the messaging part announces its stored messages itself), and what they publish
 * is acted on here as the parts would act on a change of their own, minus what the store holds
 * already. Returns the stop. On a LocalBus nothing is ever heard, and this does nothing.
 */
export function bridge(bus: KernelBus, parts: BridgedParts): () => void {
  if (!bus.shared) return () => {};
  const { kernel, messaging, shm, pipes, monitor, auth, log } = parts;
  kernel.events.on('process', (p: Process, elsewhere?: boolean) => elsewhere || bus.publish({ t: 'process', p }));
  kernel.events.on('group-deleted', (gid: string, elsewhere?: boolean) => elsewhere || bus.publish({ t: 'group-deleted', gid }));
  shm.on('change', (c, elsewhere) => elsewhere || bus.publish({ t: 'shm', c }));
  auth.on('revoked', (r: Revoked, elsewhere?: boolean) => elsewhere || bus.publish({ t: 'revoked', r }));
  monitor.on('recorded', (gid, pid, s, elsewhere) => elsewhere || bus.publish({ t: 'sample', gid, pid, s }));

  // One at a time, in the order published: a process's changes reach observers here in order.
  let chain = Promise.resolve();
  const heard = async (m: BusMessage): Promise<void> => {
    switch (m.t) {
      case 'process':
        return kernel.changedElsewhere(m.p);
      case 'group-deleted':
        return kernel.groupDeletedElsewhere(m.gid);
      case 'mail':
        return messaging.storedElsewhere(m.gid, m.to, m.seq);
      case 'shm':
        return shm.changedElsewhere(m.c);
      case 'revoked':
        return auth.revokedElsewhere(m.r);
      case 'signals':
        return kernel.signalsQueuedElsewhere(m.gid, m.pid);
      case 'kill':
        return kernel.killRecordedElsewhere(m.gid, m.pid);
      case 'pipe':
        return pipes.poke(m.gid, m.pipe);
      case 'schedule':
        return kernel.scheduleChangedElsewhere();
      case 'sample':
        return void monitor.record(m.gid, m.pid, m.s, true);
    }
  };
  bus.subscribe((m) => {
    chain = chain.then(() => heard(m)).catch((err: unknown) => log.error({ err, message: m.t }, 'cannot act on a bus message'));
  });

  // Publications are fire-and-forget: what one would have said is looked up in the store again.
  const recheck = (): void => {
    messaging.recheck();
    auth.recheck();
    kernel.recheck();
    pipes.recheck().catch((err: unknown) => log.warn({ err }, 'cannot look at the pipes again'));
  };
  bus.onGap(recheck);
  const timer = setInterval(recheck, RECHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
