import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { join, normalize } from 'node:path';

/**
 * A read-only HTTP file server for the guests' network: the stand-in for the internal mirror or
 * object store a cloud without internet access has, from which the user-data way fetches Node.js
 * and the agent (set RACK_NSPAWN_MIRROR to the directory scripts/guest-bundle.sh filled).
 */
export function serveMirror(dir: string, listener: NetServer): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!));
    const file = join(dir, path);
    let size = -1;
    try {
      const st = statSync(file);
      if (st.isFile() && !path.split('/').includes('..')) size = st.size;
    } catch {
      // not there
    }
    if ((req.method !== 'GET' && req.method !== 'HEAD') || size < 0) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listener, () => resolve(server));
  });
}
