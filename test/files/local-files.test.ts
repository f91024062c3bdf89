import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { LocalFiles } from '../../src/files/local.js';
import { fileBackendContract } from '../support/file-backend-contract.js';

// The same contract runs against Swift in test/openstack/swift-files.test.ts.
const root = mkdtempSync(join(tmpdir(), 'rack-files-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
fileBackendContract('local directory', { make: async () => new LocalFiles(root), bigBytes: 300 * 1024, boundary: 64 * 1024 });
