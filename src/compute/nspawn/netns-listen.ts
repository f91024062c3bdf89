import { spawn } from 'node:child_process';
import type { Server } from 'node:net';
import { RackError } from '../../common/errors.js';

/**
 * A helper run inside the namespace: it opens each listening socket there and hands it to us over
 * the IPC channel, then exits. The socket stays in the namespace it was made in, so this process
 * serves guests on their network without ever leaving its own.
 */
const HELPER = `
const net = require('node:net');
const want = JSON.parse(process.argv[1]);
let left = want.length;
for (const [i, [host, port]] of want.entries()) {
  const s = net.createServer();
  s.once('error', (e) => { process.send({ i, error: e.message }); process.exit(1); });
  s.listen({ host, port, exclusive: true }, () => process.send({ i }, s, () => { s.close(); if (--left === 0) process.disconnect(); }));
}`;

/** Listening sockets on `host:port` pairs inside the network namespace `/run/netns/<netns>`. */
export function listenInNetns(netns: string, endpoints: Array<[string, number]>): Promise<Server[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, '-e', HELPER, JSON.stringify(endpoints)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const servers: Server[] = [];
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('message', (m: { i: number; error?: string }, handle) => {
      if (m.error) return reject(new RackError('compute_error', `cannot listen on ${endpoints[m.i]!.join(':')} in network namespace ${netns}: ${m.error}`));
      servers[m.i] = handle as Server;
    });
    child.once('error', (err) => reject(new RackError('compute_error', `nsenter: ${err.message}`)));
    child.once('exit', (code) => {
      if (servers.filter(Boolean).length === endpoints.length) resolve(servers);
      else reject(new RackError('compute_error', `cannot listen in network namespace ${netns} (helper exit ${code}): ${stderr.trim().split('\n').pop() ?? ''}`));
    });
  });
}
