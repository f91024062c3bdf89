import type { Operation } from '../operation.js';
import { fileOps } from './files.js';
import { groupOps } from './groups.js';
import { messageOps } from './messages.js';
import { countingIpc, monitorOps } from './monitor.js';
import { pipeOps } from './pipes.js';
import { poolOps } from './pools.js';
import { processOps } from './processes.js';
import { sessionOps } from './session.js';
import type { Services } from './services.js';
import { shmOps } from './shm.js';

export type { Services } from './services.js';

/**
 * Every operation of the kernel's API, each defined once (name, input schema, policy, handler,
 * REST binding). The REST routes, the WebSocket ops and openapi.yaml are all made from this list.
 */
export function operations(services: Services): Operation[] {
  const all = [
    ...sessionOps(services),
    ...groupOps(services),
    ...processOps(services),
    ...poolOps(services),
    ...monitorOps(services),
    ...messageOps(services),
    ...shmOps(services),
    ...pipeOps(services),
    ...fileOps(services),
  ];
  // Only a running kernel has a monitor (the OpenAPI document is made without one).
  const { monitor } = services;
  return monitor ? all.map((op) => countingIpc(op, monitor)) : all;
}
