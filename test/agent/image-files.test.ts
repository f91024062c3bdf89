// What a real image gets from this repository, checked without booting one (test/guest boots them):
// the hello config outside the sim, install.sh's Node.js check and libdck link, the unit's restart
// policy, and a user-data bootstrap that needs no internet.
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { EXIT_ENDED_EARLY } from '../../src/dckinit/agent.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/log.js';
import { loadConfig } from '../../src/dckinit/config/config.js';
import { Supervisor } from '../../src/dckinit/supervisor/supervisor.js';
import { AGENT_NODE_FLAGS } from '../../src/compute/sim/sim-driver.js';

const run = promisify(execFile);

describe('examples/hello as a baked image (issue 10, item 2)', () => {
  // A `node` that prints the script it was given: which file would the role start?
  async function scriptOf(role: 'parent' | 'child', env: Record<string, string>): Promise<string> {
    const bin = mkdtempSync(join(tmpdir(), 'fake-node-'));
    writeFileSync(join(bin, 'node'), '#!/bin/sh\necho "$1"\n');
    chmodSync(join(bin, 'node'), 0o755);
    const cfg = loadConfig('examples/hello/etc/dckinit/config.yaml');
    const lines: string[] = [];
    const log = { ...silentLogger(), info: (_o: unknown, line?: string) => line !== undefined && lines.push(line) } as never;
    const saved = process.env.DCKINIT_ROOT;
    delete process.env.DCKINIT_ROOT;
    try {
      const sup = new Supervisor(cfg.roles[role]!, { PATH: `${bin}:/usr/bin:/bin`, ...env }, log);
      const exited = new Promise((r) => sup.once('exit', r));
      sup.start();
      await exited;
      return lines.find((l) => l.endsWith('hello.mjs')) ?? lines.join('|');
    } finally {
      if (saved !== undefined) process.env.DCKINIT_ROOT = saved;
      rmSync(bin, { recursive: true, force: true });
    }
  }

  it('in an image (no DCKINIT_ROOT) each role runs /opt/app/hello.mjs', async () => {
    expect(await scriptOf('parent', {})).toBe('/opt/app/hello.mjs');
    expect(await scriptOf('child', {})).toBe('/opt/app/hello.mjs');
  });

  it('in the sim (DCKINIT_ROOT is the template) each role runs the template copy', async () => {
    const tpl = resolve('examples/hello');
    expect(await scriptOf('parent', { DCKINIT_ROOT: tpl })).toBe(`${tpl}/opt/app/hello.mjs`);
  });
});

describe('cloud-init/template/install.sh into an image root (items 3 and 4)', () => {
  let work: string;
  let pkg: string;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'rack-install-'));
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work]);
    await run('tar', ['-xzf', join(work, stdout.trim().split('\n').pop()!), '-C', work]);
    pkg = join(work, 'package');
    copyFileSync('package-lock.json', join(pkg, 'package-lock.json'));
  }, 120_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  function rootWithNode(name: string, node: string | null): string {
    const root = join(work, name);
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    if (node === 'host') symlinkSync(process.execPath, join(root, 'usr/bin/node'));
    else if (node !== null) {
      writeFileSync(join(root, 'usr/bin/node'), `#!/bin/sh\necho ${node}\n`);
      chmodSync(join(root, 'usr/bin/node'), 0o755);
    }
    return root;
  }
  const install = (root: string) =>
    run('sh', [join(pkg, 'cloud-init/template/install.sh')], { env: { ...process.env, ROOT: root, npm_config_offline: 'true' } }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );

  it("checks the image's node, not the build host's: none at ROOT/usr/bin/node is an error", async () => {
    const root = rootWithNode('no-node', null);
    const r = await install(root);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`no Node.js at ${root}/usr/bin/node`);
  });

  it("refuses the image's Node.js 20.18.0 (>= 20.18.1 is needed)", async () => {
    const r = await install(rootWithNode('old-node', 'v20.18.0'));
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/Node\.js >= 20\.18\.1 is needed at .*\/usr\/bin\/node \(found 20\.18\.0\)/);
  });

  it("an app anywhere in the image imports 'rack/libdck' with no link of its own", async () => {
    const root = rootWithNode('good', 'host');
    const r = await install(root);
    expect(r.code, r.out).toBe(0);
    for (const dir of ['opt/app', 'srv/other/lib']) {
      mkdirSync(join(root, dir), { recursive: true });
      writeFileSync(join(root, dir, 'app.mjs'), "import { connect } from 'rack/libdck';\nconsole.log(typeof connect);\n");
      const a = await run(process.execPath, [join(root, dir, 'app.mjs')]);
      expect(a.stdout.trim()).toBe('function');
    }
  }, 120_000);
});

describe('systemd/dckinit.service (item 1: the unit policy)', () => {
  it('restarts the agent whenever it ends (also on a signal from outside, or its own exit 75), but not after "not a RACK VM" (exit 0)', () => {
    const unit = readFileSync('systemd/dckinit.service', 'utf8');
    const settings = unit.split('\n').filter((l) => /^[A-Za-z]+=/.test(l));
    expect(settings).toContain('Restart=always');
    expect(settings).toContain('RestartPreventExitStatus=0');
    expect(EXIT_ENDED_EARLY).not.toBe(0);
  });

  it('starts node with the flags the sim driver gives the agent (what the idle-memory figure is measured with)', () => {
    const exec = readFileSync('systemd/dckinit.service', 'utf8').split('\n').find((l) => l.startsWith('ExecStart='))!;
    expect(exec).toBe(`ExecStart=/usr/bin/node ${AGENT_NODE_FLAGS.join(' ')} /opt/rack/dist/dckinit/main.js --config /etc/dckinit/config.yaml`);
  });
});

describe('cloud-init/user-data.yaml works on a cloud without internet (item 5)', () => {
  const doc = yaml.load(readFileSync('cloud-init/user-data.yaml', 'utf8')) as Record<string, unknown>;
  const files = doc.write_files as Array<{ path: string; content: string }>;
  const vars = files[0]!;
  const rest = JSON.stringify({ ...doc, write_files: files.slice(1) });

  it('every URL and version is a variable at the top', () => {
    expect(vars.path).toBe('/etc/default/rack-bootstrap');
    expect(Object.keys(doc)[0]).toBe('write_files');
    for (const name of ['RACK_NODE_VERSION', 'RACK_NODE_URL', 'RACK_BUNDLE_URL']) expect(vars.content).toMatch(new RegExp(`^${name}=`, 'm'));
    expect(rest).not.toMatch(/(https?|ftp):\/\/[A-Za-z0-9]/); // no URL outside the variables
    expect(rest).not.toMatch(/\bv?[0-9]+\.[0-9]+\.[0-9]+\b/); // no version either
  });

  it('no package manager and no npm registry at first boot; the agent is started without blocking cloud-init', () => {
    for (const key of ['package_update', 'package_upgrade', 'packages']) expect(doc).not.toHaveProperty(key);
    expect(rest).not.toMatch(/\bnpm (install|ci)\b/);
    expect(rest).not.toMatch(/systemctl[^"\n]*--now/);
    expect(rest).toMatch(/systemctl start --no-block dckinit\.service/);
  });
});
