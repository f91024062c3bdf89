import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startKernelProcess, stopKernelProcess } from '../support/kernel-process.js';

/**
 * Found against a real Nova: agents whose VMs were just destroyed come back with revoked tokens
 * and go away mid-answer. Node's HTTP server lets go of an upgrading socket's errors; the kernel
 * must take them, or one connection reset takes it down.
 */
describe('WebSocket upgrades cut short', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rack-reset-'));
  let kernel: ChildProcess;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    kernel = await startKernelProcess(port, dir);
  });
  afterAll(async () => {
    await stopKernelProcess(kernel);
    rmSync(dir, { recursive: true, force: true });
  });

  it('500 upgrades with a refused token, each reset by its client as the answer goes out: the kernel stays up', async () => {
    const upgrade = (token: string): string =>
      `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    for (let round = 0; round < 50; round++) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => new Promise<void>((resolve) => {
        const sock = connect(port, '127.0.0.1', () => {
          sock.write(upgrade(`rkg_revoked-or-unknown-token-${round}-${i}`));
          // A RST, not a FIN: what a VM's agent killed with its VM does to its connection.
          setImmediate(() => sock.resetAndDestroy());
        });
        sock.on('error', () => {});
        sock.on('close', () => resolve());
      })));
    }
    expect(kernel.exitCode).toBeNull();
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  }, 60_000);
});
