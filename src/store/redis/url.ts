import { RackError } from '../../common/errors.js';

// Apart from the client (connect.ts): the CLI checks a --store URL without loading ioredis.

export interface Target {
  nodes: Array<{ host: string; port: number }>;
  cluster: boolean;
  db: number;
  username?: string;
  password?: string;
}

const USAGE = 'a Redis store is redis://[:PASSWORD@]HOST:PORT[/DB] or redis+cluster://[:PASSWORD@]HOST:PORT,HOST:PORT,...';

/** The URL without its password (for messages). */
export function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}

/** `redis://host:port[/db]` (one server) or `redis+cluster://h1:p1,h2:p2` (a cluster, from any of its nodes). */
export function parseRedisUrl(url: string): Target {
  const m = /^(redis|redis\+cluster):\/\/(?:([^@/]*)@)?([^/@]+?)(?:\/([0-9]{1,2}))?\/?$/.exec(url);
  if (!m) throw new RackError('bad_request', `${USAGE}; got "${redact(url)}"`);
  const [, scheme, auth, hosts, db] = m;
  const cluster = scheme === 'redis+cluster';
  const nodes = hosts!.split(',').map((hp) => {
    const n = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(hp);
    const port = Number(n?.[2] ?? 6379);
    if (!n || port < 1 || port > 65535) throw new RackError('bad_request', `${USAGE}; "${hp}" is not HOST:PORT`);
    return { host: n[1]!.replace(/^\[|\]$/g, ''), port };
  });
  if (!cluster && nodes.length > 1) throw new RackError('bad_request', `${USAGE}; several nodes need redis+cluster://`);
  if (cluster && db !== undefined) throw new RackError('bad_request', `${USAGE}; a cluster has no database number`);
  const [user, pass] = auth === undefined ? [] : auth.includes(':') ? auth.split(/:(.*)/s) : [undefined, auth];
  return {
    nodes,
    cluster,
    db: Number(db ?? 0),
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(pass ? { password: decodeURIComponent(pass) } : {}),
  };
}
