/**
 * libdck: what apps running in RACK VMs call. `connect()` reads the RACK_* environment that
 * dckinit gives the app and opens one WebSocket to the kernel for every call.
 */
export { connect, Rack, type ConnectOptions, type ForkOptions } from './rack.js';
export type { Message } from './messages.js';
export { Pipe } from './pipes.js';
export type { FileInfo } from '../protocol/files.js';
export { SharedMemory } from './shm.js';
export { RackError } from '../common/errors.js';
export type { Process, WaitResult, SignalName } from '../protocol/process.js';
export type { GroupUsage, PoolView, ProcessUsage, QueuedFork, Usage } from '../protocol/resources.js';
