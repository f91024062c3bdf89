/** The one-machine simulation toolkit: a sim kernel harness and the drawings demos use. */
export { Sim, type SimOptions } from './harness.js';
export { buildGuestImage } from './guest-image.js';
export type { AppLine } from './console-follower.js';
export { drawTimelines, formatCount, formatDuration, LiveBlock, progressBar, type Lifetime } from './render.js';
export { drawTree } from '../cli/tree.js';
export { formatBytes, sparkline } from '../cli/format.js';
export { ADMIN } from '../auth/auth.js';
