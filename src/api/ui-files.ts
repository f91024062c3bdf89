import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The live view's files (src/api/ui, copied to dist/api/ui by the build), by URL path: nothing else is served. */
const FILES: Readonly<Record<string, [string, string]>> = {
  '/ui': ['index.html', 'text/html; charset=utf-8'],
  '/ui/': ['index.html', 'text/html; charset=utf-8'],
  '/ui/ui.js': ['ui.js', 'text/javascript; charset=utf-8'],
  '/ui/ui.css': ['ui.css', 'text/css; charset=utf-8'],
};

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'ui');

/**
 * Serves the live view's static files (they hold no data: the page asks for a token and reads
 * everything over the WebSocket). Strict headers: the page loads only its own files and talks
 * only to this kernel. Answers false for any other path.
 */
export async function serveUi(path: string, res: ServerResponse): Promise<boolean> {
  const file = FILES[path];
  if (!file) return false;
  const body = await readFile(join(DIR, file[0]));
  res.writeHead(200, {
    'content-type': file[1],
    'content-length': body.length,
    'cache-control': 'no-cache',
    'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(body);
  return true;
}
