import type { FileBackend } from '../../files/backend.js';
import type { Messaging } from '../../ipc/messaging.js';
import type { Pipes } from '../../ipc/pipes.js';
import type { SharedMemory } from '../../ipc/shared-memory.js';
import type { Kernel } from '../../kernel/kernel.js';
import type { Monitor } from '../../monitor/monitor.js';

/** What the operations act on: the kernel's parts, as the composition root made them. */
export interface Services {
  kernel: Kernel;
  messaging: Messaging;
  shm: SharedMemory;
  pipes: Pipes;
  files: FileBackend;
  monitor: Monitor;
}
