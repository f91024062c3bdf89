import { join } from 'node:path';
import type { Kernel } from '../kernel/kernel.js';
import { isTerminal, type Process } from '../protocol/process.js';
import type { FileBackend } from '../files/backend.js';
import { LocalFiles } from '../files/local.js';
import { Messaging } from './messaging.js';
import { Pipes } from './pipes.js';
import { SharedMemory } from './shared-memory.js';

export interface Ipc {
  messaging: Messaging;
  shm: SharedMemory;
  pipes: Pipes;
  files: FileBackend;
  close(): void;
}

/** The group services beside the process table: messages, shared memory, pipes, files. */
export function createIpc(kernel: Kernel, opts: { dataDir: string; files?: FileBackend }): Ipc {
  const ipc: Ipc = {
    messaging: new Messaging(kernel),
    shm: new SharedMemory(kernel.store.shm),
    pipes: new Pipes(),
    files: opts.files ?? new LocalFiles(join(opts.dataDir, 'files')),
    close: () => ipc.shm.close(),
  };
  kernel.on('process', (p: Process) => {
    if (p.status === 'BUILD' && p.ppid !== null) ipc.pipes.inherit(p.gid, p.ppid, p.pid);
    if (isTerminal(p.status)) ipc.pipes.closeProcess(p.gid, p.pid);
  });
  kernel.on('group-deleted', (gid: string) => {
    ipc.pipes.closeGroup(gid);
    void ipc.files.deleteGroup(gid);
  });
  return ipc;
}
