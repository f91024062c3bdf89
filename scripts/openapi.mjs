// Writes src/api/openapi.yaml from the operation table (run after a build: `npm run openapi`).
import { writeFileSync } from 'node:fs';
import { openApiYaml } from '../dist/api/openapi.js';

writeFileSync(new URL('../src/api/openapi.yaml', import.meta.url), openApiYaml());
console.log('src/api/openapi.yaml written');
