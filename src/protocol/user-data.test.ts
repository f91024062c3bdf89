import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cloudConfigs, composeUserData, credentialsOf } from './user-data.js';

const token = 'rkp_0123456789abcdefABCDEF-_xyz';
const creds = { token, agent_token: 'rkg_0123456789abcdefABCDEF-_xyz' };

describe('user_data with RACK credentials', () => {
  it('without user_data of the user: one cloud-config document', () => {
    const ud = composeUserData(null, creds);
    expect(ud.startsWith('#cloud-config\n')).toBe(true);
    expect(credentialsOf(ud)).toEqual(creds);
  });

  it("beside the user's cloud-config, shell script or MIME document, each keeps its type", () => {
    const config = '#cloud-config\npackages: [curl]\ndckinit:\n  heartbeat: 5\n';
    const both = composeUserData(config, creds);
    expect(both).toMatch(/^Content-Type: multipart\/mixed; boundary=/);
    expect(credentialsOf(both)).toEqual(creds);
    expect(cloudConfigs(both)).toContain(config);
    expect(composeUserData('#!/bin/sh\necho hi\n', creds)).toContain('Content-Type: text/x-shellscript');
    const mime = ['Content-Type: multipart/mixed; boundary="x"', 'MIME-Version: 1.0', '', '--x', 'Content-Type: text/cloud-config', 'Content-Transfer-Encoding: base64', '', Buffer.from(config).toString('base64'), '--x--', ''].join('\n');
    const nested = composeUserData(mime, creds);
    expect(credentialsOf(nested)).toEqual(creds);
    expect(cloudConfigs(nested)).toContain(config);
  });

  it('finds no credentials where there are none, and refuses a token that could break the document', () => {
    expect(credentialsOf(null)).toBeNull();
    expect(credentialsOf('#cloud-config\nrack: {token: "a b", agent_token: "rkg_12345678"}\n')).toBeNull();
    expect(credentialsOf('#!/bin/sh\n')).toBeNull();
    expect(() => composeUserData(null, { ...creds, token: 'x\nruncmd: [reboot]' })).toThrow();
  });

  it("cloud-init's own schema check accepts the credentials document", () => {
    let cloudInit = true;
    try {
      execFileSync('cloud-init', ['--version'], { stdio: 'ignore' });
    } catch {
      cloudInit = false;
    }
    if (!cloudInit) return; // CI installs cloud-init; a developer machine may not have it.
    const file = join(mkdtempSync(join(tmpdir(), 'ud-')), 'user-data');
    writeFileSync(file, composeUserData(null, creds));
    expect(execFileSync('cloud-init', ['schema', '-c', file], { encoding: 'utf8' })).toMatch(/Valid cloud-config/);
  });
});
