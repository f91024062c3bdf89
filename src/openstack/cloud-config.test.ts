import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadCloudConfig } from './cloud-config.js';

describe('cloud configuration: clouds.yaml, secure.yaml, OS_* environment', () => {
  let root: string;
  let cwd: string;
  let user: string;
  let system: string;
  const dirs = (): string[] => [cwd, user, system];
  const load = (env: Record<string, string>) => loadCloudConfig({ env, searchDirs: dirs() });

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'rack-clouds-'));
    [cwd, user, system] = ['cwd', 'home/.config/openstack', 'etc/openstack'].map((d) => join(root, d));
    for (const d of dirs()) mkdirSync(d, { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const cloudsYaml = `clouds:
  prod:
    auth:
      auth_url: https://keystone.example.com:5000/v3
      username: rack
      project_name: rack
      user_domain_name: Users
      project_domain_id: default
    region_name: RegionTwo
    interface: internal
`;

  it('OS_CLOUD picks a cloud from the first clouds.yaml in ./, ~/.config/openstack/, /etc/openstack/, merged with secure.yaml', () => {
    writeFileSync(join(system, 'clouds.yaml'), cloudsYaml.replace('RegionTwo', 'RegionSystem'));
    writeFileSync(join(user, 'clouds.yaml'), cloudsYaml);
    writeFileSync(join(system, 'secure.yaml'), 'clouds:\n  prod:\n    auth:\n      password: s3cret\n');
    const c = load({ OS_CLOUD: 'prod' });
    expect(c.auth).toMatchObject({ authUrl: 'https://keystone.example.com:5000/v3', username: 'rack', password: 's3cret', projectName: 'rack', userDomainName: 'Users', projectDomainId: 'default' });
    expect(c.auth.projectDomainName).toBeUndefined();
    expect(c).toMatchObject({ region: 'RegionTwo', interface: 'internal' });
    expect(c.source).toContain(join(user, 'clouds.yaml'));

    writeFileSync(join(cwd, 'clouds.yaml'), cloudsYaml.replace('RegionTwo', 'RegionHere').replace('interface: internal', 'interface: admin'));
    expect(load({ OS_CLOUD: 'prod' })).toMatchObject({ region: 'RegionHere', interface: 'admin' });
  });

  it('OS_CLIENT_CONFIG_FILE names the file; application credentials; cacert', () => {
    const file = join(root, 'mine.yaml');
    writeFileSync(join(root, 'ca.pem'), 'PEM');
    writeFileSync(file, `clouds:\n  app:\n    auth_type: v3applicationcredential\n    auth: {auth_url: "http://k:5000", application_credential_id: abc, application_credential_secret: xyz}\n    cacert: ${join(root, 'ca.pem')}\n`);
    const c = load({ OS_CLOUD: 'app', OS_CLIENT_CONFIG_FILE: file });
    expect(c.auth).toMatchObject({ applicationCredentialId: 'abc', applicationCredentialSecret: 'xyz' });
    expect(c.cacert).toBe(join(root, 'ca.pem'));
    expect(c.interface).toBe('public');
  });

  it('says what is wrong: no file, no such cloud, a missing key, a bad value', () => {
    expect(() => load({ OS_CLOUD: 'prod' })).toThrow(/OS_CLOUD=prod but there is no clouds.yaml \(looked at .*cwd\/clouds.yaml/);
    writeFileSync(join(cwd, 'clouds.yaml'), cloudsYaml);
    expect(() => load({ OS_CLOUD: 'test' })).toThrow(/no cloud "test" in .*clouds.yaml \(it has: prod\)/);
    expect(() => load({ OS_CLOUD: 'prod' })).toThrow(/cloud "prod" of .*: auth.password is missing \(in clouds.yaml or secure.yaml\)/);
    writeFileSync(join(cwd, 'clouds.yaml'), cloudsYaml.replace('      username: rack\n', '      password: p\n'));
    expect(() => load({ OS_CLOUD: 'prod' })).toThrow(/auth.username is missing/);
    writeFileSync(join(cwd, 'clouds.yaml'), cloudsYaml.replace('username: rack', 'username: rack\n      password: p').replace('interface: internal', 'interface: private'));
    expect(() => load({ OS_CLOUD: 'prod' })).toThrow(/interface must be public, internal or admin, got "private"/);
    writeFileSync(join(cwd, 'clouds.yaml'), cloudsYaml.replace('username: rack', 'username: [rack]\n      password: p'));
    expect(() => load({ OS_CLOUD: 'prod' })).toThrow(/auth.username must be a string/);
    writeFileSync(join(cwd, 'clouds.yaml'), 'clouds: [\n');
    expect(() => load({ OS_CLOUD: 'prod' })).toThrow(/clouds.yaml is not valid YAML/);
    writeFileSync(join(cwd, 'clouds.yaml'), cloudsYaml.replace('username: rack', 'username: rack\n      password: p').replace('https://keystone', 'keystone'));
    expect(() => load({ OS_CLOUD: 'prod' })).toThrow(/auth_url "keystone.example.com:5000\/v3" is not an http\(s\) URL/);
  });

  it('without OS_CLOUD: the OS_* variables of an openrc, OS_CACERT checked', () => {
    const env = { OS_AUTH_URL: 'http://k:5000/v3', OS_USERNAME: 'u', OS_PASSWORD: 'p', OS_PROJECT_NAME: 'x', OS_INTERFACE: 'internalURL', OS_REGION_NAME: 'R1' };
    expect(load(env)).toMatchObject({ auth: { username: 'u', password: 'p', projectName: 'x', userDomainName: 'Default', projectDomainName: 'Default' }, interface: 'internal', region: 'R1', source: 'the OS_* environment' });
    expect(() => load({})).toThrow(/set OS_CLOUD .* or OS_AUTH_URL/);
    expect(() => load({ ...env, OS_PROJECT_NAME: '' })).toThrow(/OS_PROJECT_NAME is not set/);
    expect(() => load({ ...env, OS_CACERT: join(root, 'none.pem') })).toThrow(/OS_CACERT: no CA bundle at .*none.pem/);
    expect(load({ OS_AUTH_URL: 'http://k:5000', OS_APPLICATION_CREDENTIAL_ID: 'id', OS_APPLICATION_CREDENTIAL_SECRET: 's' }).auth.applicationCredentialId).toBe('id');
    expect(() => load({ OS_AUTH_URL: 'http://k:5000', OS_APPLICATION_CREDENTIAL_ID: 'id' })).toThrow(/OS_APPLICATION_CREDENTIAL_SECRET is not set/);
  });
});
