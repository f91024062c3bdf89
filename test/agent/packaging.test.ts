import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MetadataServer } from '../../src/compute/metadata/metadata-server.js';

const run = promisify(execFile);
const has = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

describe('systemd unit and cloud-init files', () => {
  it.skipIf(!has('systemd-analyze', ['--version']))('systemd-analyze verify passes on the unit', async () => {
    const { stderr } = await run('systemd-analyze', ['verify', 'systemd/dckinit.service']);
    expect(stderr).toBe('');
  });

  for (const file of ['cloud-init/user-data.yaml', 'cloud-init/template/99-rack.cfg']) {
    it.skipIf(!has('cloud-init', ['--version']))(`cloud-init schema passes on ${file}`, async () => {
      const { stdout } = await run('cloud-init', ['schema', '--config-file', file]);
      expect(stdout).toMatch(/Valid cloud-config/);
    });
  }
});

describe('cloud-init/template/install.sh', () => {
  it('bakes dckinit into a mounted image root (ROOT=...) from an npm pack; the agent runs from there without native modules', async () => {
    const work = mkdtempSync(join(tmpdir(), 'rack-image-'));
    try {
      const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work]);
      await run('tar', ['-xzf', join(work, stdout.trim().split('\n').pop()!), '-C', work]);
      // A checkout has the lockfile (npm pack leaves it out): the image gets the tested versions,
      // and the install works offline from the cache `npm ci` filled.
      copyFileSync('package-lock.json', join(work, 'package', 'package-lock.json'));
      const root = join(work, 'root');
      // The image's own Node.js (install.sh checks that one): here, this machine's.
      mkdirSync(join(root, 'usr/bin'), { recursive: true });
      symlinkSync(process.execPath, join(root, 'usr/bin/node'));
      const r = await run('sh', [join(work, 'package', 'cloud-init', 'template', 'install.sh')], { env: { ...process.env, ROOT: root, npm_config_offline: 'true' } });
      expect(r.stdout).toContain(`dckinit installed in ${root}`);
      for (const f of ['opt/rack/dist/dckinit/main.js', 'opt/rack/node_modules/ws/package.json', 'etc/cloud/cloud.cfg.d/99-rack.cfg', 'etc/dckinit/config.yaml', 'etc/systemd/system/dckinit.service']) {
        expect(existsSync(join(root, f)), f).toBe(true);
      }
      expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/dckinit.service'))).toBe('/etc/systemd/system/dckinit.service');
      expect(existsSync(join(root, 'opt/rack/node_modules/typescript'))).toBe(false);
      // better-sqlite3 was not built (--ignore-scripts): the agent must not need it.
      const md = new MetadataServer();
      await md.listen(0);
      const secret = MetadataServer.newSecret();
      md.register({ secret, uuid: 'u', name: 'vm', meta: {}, userData: null });
      try {
        const a = await run(process.execPath, [join(root, 'opt/rack/dist/dckinit/main.js'), '--config', join(root, 'etc/dckinit/config.yaml'), '--metadata-url', md.baseUrl(secret)]);
        expect(a.stderr).toMatch(/not a RACK VM/);
      } finally {
        await md.close();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('dckinit binary', () => {
  async function agentWith(meta: Record<string, string>, config = 'roles: {}\n', userData: string | null = null): Promise<{ code: number; stderr: string }> {
    const md = new MetadataServer();
    await md.listen(0);
    const secret = MetadataServer.newSecret();
    md.register({ secret, uuid: 'u', name: 'vm', meta, userData });
    const cfg = join(mkdtempSync(join(tmpdir(), 'dckinit-bin-')), 'config.yaml');
    writeFileSync(cfg, config);
    try {
      const r = await run(process.execPath, ['dist/dckinit/main.js', '--config', cfg, '--metadata-url', md.baseUrl(secret)], { env: { ...process.env, RACK_LOG_LEVEL: 'error' } });
      return { code: 0, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, stderr: e.stderr };
    } finally {
      await md.close();
    }
  }

  it('without rack_pid it says "not a RACK VM" and exits 0 without launching', async () => {
    const r = await agentWith({ purpose: 'plain VM' }, 'roles:\n  parent:\n    command: ["/bin/false"]\n');
    expect(r.code).toBe(0);
  });

  it('missing RACK keys: a clear error and a non-zero exit', async () => {
    const r = await agentWith({ rack_pid: '100', rack_gid: 'g' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/metadata has no rack_url/);
  });

  it('RACK metadata but no credentials in user_data: a clear error and a non-zero exit', async () => {
    const r = await agentWith({ rack_pid: '100', rack_gid: 'g', rack_url: 'http://127.0.0.1:9' }, 'roles: {}\n', '#cloud-config\n{}\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/user_data holds no RACK credentials/);
  });

  it('a bad config: the file, line and key, and a non-zero exit', async () => {
    const r = await agentWith({}, 'roles:\n  parent:\n    command: 42\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/config\.yaml:3: roles\.parent\.command must be a non-empty list of strings/);
  });

  it('unknown flags: usage and exit 2', async () => {
    const r = await run(process.execPath, ['dist/dckinit/main.js', '--bogus']).catch((e) => e);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/usage: dckinit/);
    const v = await run(process.execPath, ['dist/dckinit/main.js', '--version']);
    expect(v.stdout).toMatch(/^dckinit [0-9]+\.[0-9]+\.[0-9]+\n$/);
  });
});
