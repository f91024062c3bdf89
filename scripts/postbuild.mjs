// Makes the built entry points executable and copies the non-TypeScript assets next to them,
// so that `npm ci` alone leaves runnable `rack` and `dckinit` binaries.
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

for (const bin of ['dist/cli/main.js', 'dist/dckinit/main.js']) {
  if (existsSync(bin)) chmodSync(bin, 0o755);
}
for (const [from, to] of [
  ['src/api/openapi.yaml', 'dist/api/openapi.yaml'],
  ['src/libdck/libdck.sh', 'dist/libdck/libdck.sh'],
  // The live view's page: plain files, served by the kernel at /ui.
  ['src/api/ui/index.html', 'dist/api/ui/index.html'],
  ['src/api/ui/ui.js', 'dist/api/ui/ui.js'],
  ['src/api/ui/ui.css', 'dist/api/ui/ui.css'],
]) {
  if (!existsSync(from)) continue;
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}
