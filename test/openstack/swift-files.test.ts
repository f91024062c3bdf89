import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwiftApi } from '../../src/files/swift/swift-api.js';
import { SwiftFiles } from '../../src/files/swift/swift-files.js';
import type { KeystoneSession } from '../../src/openstack/keystone.js';
import { fileBackendContract } from '../support/file-backend-contract.js';
import { admin, fixture, rack, session, startKernel, type KernelProcess } from './support/fixture.js';

const SEGMENT = 64 * 1024;
const PREFIX = `rack-t${randomBytes(3).toString('hex')}-`;

// The same contract as the local directory's (test/files), against the fixture's Swift, with
// segments small enough that the big file is an SLO of several.
let swift: SwiftApi;
let check: KeystoneSession;
fileBackendContract('Swift (SLO segments of 64 KiB)', {
  make: async () => {
    check = session('rack');
    swift = new SwiftApi(check);
    return new SwiftFiles({ session: session('rack'), segmentBytes: SEGMENT, containerPrefix: PREFIX });
  },
  bigBytes: 300 * 1024,
  boundary: SEGMENT,
  // After the big file is written: it is a manifest, and its 5 segments are all the segments
  // container holds (none left from failed or replaced uploads). After it is deleted: none.
  afterBig: async (_fs, gid) => {
    const head = await swift.headObject(`${PREFIX}${gid}`, 'data/big.bin');
    const segments = await swift.listObjects(`${PREFIX}${gid}_segments`, '', 100);
    if (head) {
      expect(head.slo).toBe(true);
      expect(segments).toHaveLength(Math.ceil((300 * 1024) / SEGMENT));
    } else {
      expect(segments).toEqual([]);
    }
  },
});

afterAll(async () => {
  await check?.close();
});

describe('rack kernel --files swift', () => {
  const fx = fixture();
  let k: KernelProcess;
  let dir: string;
  let api: SwiftApi;
  let os: KeystoneSession;

  beforeAll(async () => {
    os = session('rack');
    api = new SwiftApi(os);
    dir = mkdtempSync(join(tmpdir(), 'rack-swift-'));
    k = await startKernel({ files: 'swift', env: { OS_CLOUD: 'rack', OS_CLIENT_CONFIG_FILE: fx.cloudsFile, RACK_NOVA_NETWORKS: 'none', RACK_SWIFT_SEGMENT_BYTES: String(256 * 1024) } });
  });
  afterAll(async () => {
    await k.stop();
    await os.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('group files are objects in the group\'s container: put, ls, get, rm; deleting the group deletes its containers', async () => {
    const gid = JSON.parse((await rack(['group', 'create', 'files', '--template', fx.image, '--flavor', fx.flavor, '--json'], k.env)).stdout).gid;
    const data = randomBytes(1024 * 1024 + 123);
    writeFileSync(join(dir, 'in.bin'), data);
    const put = await rack(['file', 'put', 'inbox/in.bin', join(dir, 'in.bin'), '--gid', gid], k.env);
    expect(put.code, put.stderr).toBe(0);
    expect(await api.headObject(`rack-${gid}`, 'inbox/in.bin')).toMatchObject({ size: data.length, slo: true });
    expect(await api.listObjects(`rack-${gid}_segments`, '', 100)).toHaveLength(5);

    const ls = await rack(['file', 'ls', 'inbox/', '--gid', gid, '--json'], k.env);
    expect(JSON.parse(ls.stdout)).toMatchObject([{ path: 'inbox/in.bin', size: data.length }]);
    const get = await rack(['file', 'get', 'inbox/in.bin', join(dir, 'out.bin'), '--gid', gid], k.env);
    expect(get.code, get.stderr).toBe(0);
    expect(readFileSync(join(dir, 'out.bin')).equals(data)).toBe(true);

    expect((await rack(['file', 'rm', 'inbox/in.bin', '--gid', gid], k.env)).code).toBe(0);
    expect(await api.headObject(`rack-${gid}`, 'inbox/in.bin')).toBeNull();
    expect(await api.listObjects(`rack-${gid}_segments`, '', 100)).toEqual([]);

    await rack(['file', 'put', 'keep.txt', '-', '--gid', gid], k.env, 'kept until the group goes\n');
    expect((await admin(k, 'DELETE', `/v1/groups/${gid}`)).status).toBe(204);
    // The kernel deletes a group's files in the background.
    for (let i = 0; (await api.listObjects(`rack-${gid}`, '', 10)).length > 0; i++) {
      if (i > 100) throw new Error('the group\'s container is still there');
      await new Promise((r) => setTimeout(r, 200));
    }
  });
});
