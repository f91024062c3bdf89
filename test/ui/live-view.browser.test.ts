import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, startTestKernel, type TestKernel } from '../support/kernel.js';

const CHROMIUM = '/usr/bin/chromium';
const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');
/** Kept after the run (git-ignored): what the page looked like. */
export const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');

if (!existsSync(CHROMIUM)) process.stderr.write(`SKIPPED: the live view's browser test needs Debian's chromium at ${CHROMIUM} (apt-get install chromium)\n`);

/** The live view in a real browser (Debian's chromium, headless) against a kernel running the hello example. */
describe.skipIf(!existsSync(CHROMIUM))('live view in chromium', () => {
  let k: TestKernel;
  let context: BrowserContext;
  let page: Page;
  const profile = mkdtempSync(join(tmpdir(), 'rack-chromium-'));
  const sockets: string[] = [];

  beforeAll(async () => {
    k = await startTestKernel({ templates: [FIXTURES, EXAMPLES] });
    // A new empty profile, and no background traffic: this machine's network is closed.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 640 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('websocket', (ws) => sockets.push(ws.url()));
  });
  afterAll(async () => {
    await context?.close();
    await k?.cleanup();
    rmSync(profile, { recursive: true, force: true });
  });

  it('shows the group, draws the process tree as hello forks, and updates it live when a child exits', async () => {
    const gid = (await k.call('POST', '/v1/groups', { group: { name: 'hello', template: 'hello', args: { children: '2' } } })).body.group.gid;
    await page.goto(`${k.url}/ui`);
    await page.fill('#token', k.adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector(`[data-gid="${gid}"] >> text=no processes yet`);

    // Every status the page shows for each process, recorded in the page as the DOM changes.
    // (A string: this file is type-checked without the DOM's types.)
    await page.evaluate(`
      window.seen = {};
      new MutationObserver(() => {
        for (const row of document.querySelectorAll('tr[data-pid]')) {
          const list = (window.seen[row.dataset.pid] ??= []);
          if (list.at(-1) !== row.dataset.status) list.push(row.dataset.status);
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    `);

    expect((await k.call('POST', `/v1/groups/${gid}/processes`, { process: { name: 'hello' } })).status).toBe(202);
    const card = `[data-gid="${gid}"]`;
    await page.waitForSelector(`${card} tr[data-pid="100"]`);
    // The children appear under the root, then end (each exits with its own code).
    await page.waitForSelector(`${card} tr[data-pid="101"][data-status="EXITED"]`, { timeout: 120_000 });
    await page.waitForSelector(`${card} tr[data-pid="102"][data-status="EXITED"]`, { timeout: 120_000 });
    await page.waitForSelector(`${card} tr[data-pid="100"][data-status="EXITED"]`, { timeout: 120_000 });
    const seen = (await page.evaluate('window.seen')) as Record<string, string[]>;
    // Live: the page showed each child before it ended, and then its end, without a reload.
    for (const pid of ['101', '102']) {
      expect(seen[pid]!.at(-1)).toBe('EXITED');
      expect(seen[pid]!.length).toBeGreaterThan(1);
    }
    expect(await page.textContent(`${card} tr[data-pid="101"]`)).toContain('EXITED 1');
    expect(await page.textContent(`${card} tr[data-pid="102"]`)).toContain('EXITED 2');
    expect(await page.textContent(`${card} tr[data-pid="101"] td.name`)).toContain('└ hello-child');

    // The token never travels in a URL.
    expect(page.url()).not.toContain(k.adminToken);
    expect(sockets.length).toBeGreaterThan(0);
    for (const u of sockets) expect(u).not.toContain(k.adminToken);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'live-view.png'), fullPage: true });
  });

  it('draws usage sparklines from the agents\' samples, the pool, and the queued forks', async () => {
    const out = mkdtempSync(join(tmpdir(), 'rack-ui-'));
    const gid = (await k.call('POST', '/v1/groups', { group: { name: 'workers', template: 'notify-app', args: { out } } })).body.group.gid;
    await k.call('PUT', `/v1/groups/${gid}/pool`, { pool: { capacity: { instances: 3 } } });
    await page.reload();
    const card = `[data-gid="${gid}"]`;
    await page.waitForSelector(`${card} >> text=no processes yet`);
    await k.call('POST', `/v1/groups/${gid}/processes`, { process: { name: 'server' } });
    expect((await k.call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 3, name: 'worker' } })).status).toBe(202);
    await page.waitForSelector(`${card} tr[data-pid="103"][data-status="QUEUED"]`);
    await page.waitForSelector(`${card} .queue >> text=103 (#1, priority 0, waits for the group's pool)`);
    // A few samples a second apart: each live process gets a line in its sparkline.
    for (const pid of [100, 101, 102]) await page.waitForSelector(`${card} tr[data-pid="${pid}"] svg.spark polyline`, { timeout: 60_000 });
    expect(await page.textContent(`${card} .facts`)).toContain('instances 3/3');
    await page.screenshot({ path: join(ARTIFACTS, 'live-view-usage.png'), fullPage: true });
    rmSync(out, { recursive: true, force: true });
  });
});
