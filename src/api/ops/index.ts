import type { Operation } from '../operation.js';
import { fileOps } from './files.js';
import { groupOps } from './groups.js';
import { messageOps } from './messages.js';
import { pipeOps } from './pipes.js';
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
  return [
    ...sessionOps(services),
    ...groupOps(services),
    ...processOps(services),
    ...messageOps(services),
    ...shmOps(services),
    ...pipeOps(services),
    ...fileOps(services),
  ];
}
