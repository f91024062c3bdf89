import { Agent, type Dispatcher } from 'undici';

// The CA file reading lives apart from undici, so the CLI can read a CA without loading undici.
export { isPem, readCa } from './ca.js';

const agents = new Map<string, Agent>();

/** The HTTP dispatcher that trusts `ca` (one per CA, shared); the default one without a CA. */
export function dispatcherFor(ca: string | undefined): Dispatcher | undefined {
  if (!ca) return undefined;
  let a = agents.get(ca);
  if (!a) agents.set(ca, (a = new Agent({ connect: { ca } })));
  return a;
}
