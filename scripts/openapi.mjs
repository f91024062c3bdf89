// Writes src/api/openapi.yaml and docs/operations.md from the operation table (after a build:
// `npm run openapi`). A test checks that both are up to date.
import { writeFileSync } from 'node:fs';
import { openApiYaml, operationsMarkdown } from '../dist/api/openapi.js';

writeFileSync(new URL('../src/api/openapi.yaml', import.meta.url), openApiYaml());
writeFileSync(new URL('../docs/operations.md', import.meta.url), operationsMarkdown());
console.log('src/api/openapi.yaml and docs/operations.md written');
