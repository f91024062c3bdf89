import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { sdNotify } from '../../common/sd-notify.js';
import { NotifyRelay, type Notification } from './relay.js';

const hasPython = spawnSync('python3', ['-V'], { stdio: 'ignore' }).status === 0 || existsSync('/usr/bin/python3');

describe.skipIf(!hasPython)('NotifyRelay', () => {
  const saved = { ...process.env };
  const dirs: string[] = [];
  afterEach(() => {
    process.env = { ...saved };
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function relayed(relay: NotifyRelay, fields: Record<string, string>): Promise<Notification> {
    const got = new Promise<Notification>((resolve) => relay.once('message', resolve));
    await sdNotify(relay.socketPath, fields);
    return got;
  }

  it('binds a NOTIFY_SOCKET and hands on what is sent to it; close removes it, and again is harmless', async () => {
    const relay = (await NotifyRelay.start(silentLogger()))!;
    expect(relay).not.toBeNull();
    expect(await relayed(relay, { READY: '1', STATUS: 'serving' })).toEqual({ READY: '1', STATUS: 'serving' });
    relay.close();
    relay.close();
    expect(existsSync(dirname(relay.socketPath))).toBe(false);
  });

  it.skipIf(!existsSync('/usr/bin/python3'))('runs the system python3, isolated: a python3 earlier on PATH and PYTHONPATH do not reach it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-relay-'));
    dirs.push(dir);
    // A version manager's shim that cannot start, and a json module that breaks the helper's import.
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'python3'), '#!/bin/sh\necho "not this python" >&2\nexit 1\n');
    chmodSync(join(dir, 'bin', 'python3'), 0o755);
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'lib', 'json.py'), 'raise SystemExit("not this json")\n');
    process.env.PATH = `${join(dir, 'bin')}:${saved.PATH ?? ''}`;
    process.env.PYTHONPATH = join(dir, 'lib');
    const relay = await NotifyRelay.start(silentLogger());
    expect(relay).not.toBeNull();
    try {
      expect(await relayed(relay!, { STATUS: 'warming up' })).toEqual({ STATUS: 'warming up' });
    } finally {
      relay!.close();
    }
  });
});
