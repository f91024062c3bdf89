import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, lineOf, loadConfig } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'dckinit-config-'));
function file(text: string): string {
  const f = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, text);
  return f;
}

const GOOD = `metadata:
  timeout: 30
roles:
  parent:
    command: [node, "\${DCKINIT_ROOT}/opt/app/main.js"]
    environment:
      MODE: catcher
  child:
    command: "exec ./worker --fast"
    shell: true
    on_exit: kill
    restart:
      policy: on-failure
      max: 2
`;

describe('dckinit config', () => {
  it('loads and fills defaults', () => {
    const c = loadConfig(file(GOOD));
    expect(c.metadata.timeout).toBe(30);
    expect(c.heartbeat).toBe(15);
    expect(c.roles.parent).toMatchObject({ command: ['node', '${DCKINIT_ROOT}/opt/app/main.js'], shell: false, on_exit: null, stop_grace: 10, environment: { MODE: 'catcher' } });
    expect(c.roles.child!.restart).toEqual({ policy: 'on-failure', max: 2, backoff: 1 });
  });

  it('a missing file is an empty config', () => {
    expect(loadConfig(join(dir, 'absent.yaml')).roles).toEqual({});
  });

  it('names the key and the line of a wrong type', () => {
    const f = file(GOOD.replace('max: 2', 'max: lots'));
    expect(() => loadConfig(f)).toThrow(ConfigError);
    expect(() => loadConfig(f)).toThrow(`${f}:14: roles.child.restart.max must be a number from 0 to 1000`);
  });

  it('names an unknown key and its line', () => {
    const f = file(GOOD.replace('    on_exit: kill', '    on_exit: kill\n    colour: red'));
    expect(() => loadConfig(f)).toThrow(`${f}:12: roles.child.colour is not a known key`);
  });

  it('refuses a command string without shell: true', () => {
    const f = file('roles:\n  parent:\n    command: "node app.js"\n');
    expect(() => loadConfig(f)).toThrow(/:3: roles.parent.command is a single string: give an argv list, or set "shell: true"/);
  });

  it('reports YAML syntax errors with their line', () => {
    const f = file('roles:\n  parent: [\n');
    expect(() => loadConfig(f)).toThrow(/:3: not valid YAML/);
  });

  it("merges user_data's dckinit: key over the file", () => {
    const c = loadConfig(file(GOOD), '#cloud-config\ndckinit:\n  roles:\n    parent:\n      stop_grace: 3\n');
    expect(c.roles.parent).toMatchObject({ stop_grace: 3, environment: { MODE: 'catcher' } });
    expect(() => loadConfig(file(GOOD), '#cloud-config\ndckinit:\n  roles:\n    parent:\n      stop_grace: soon\n')).toThrow(
      'user_data (dckinit:):5: roles.parent.stop_grace must be a number',
    );
    // user_data that is not cloud-config is the app's business, not the agent's.
    expect(loadConfig(file(GOOD), '#!/bin/sh\necho hi\n').roles.parent!.stop_grace).toBe(10);
  });

  it('finds lines by indentation, not by the first occurrence of a name', () => {
    const text = 'a:\n  max: 1\nb:\n  c:\n    max: 2\n';
    expect(lineOf(text, ['b', 'c', 'max'])).toBe(5);
    expect(lineOf(text, ['a', 'max'])).toBe(2);
  });
});
