import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { RackError } from '../common/errors.js';

/** The OpenAPI document is the one source of the request schemas: the server validates with it. */
export const OPENAPI_DOC = yaml.load(readFileSync(new URL('./openapi.yaml', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, unknown> };
};

const ajv = new Ajv2020({ allErrors: false, strict: false });
ajv.addSchema(OPENAPI_DOC, 'openapi');

const cache = new Map<string, ValidateFunction>();

export function schemaValidator(name: string): ValidateFunction {
  let v = cache.get(name);
  if (!v) {
    v = ajv.getSchema(`openapi#/components/schemas/${name}`);
    if (!v) throw new Error(`no schema ${name} in openapi.yaml`);
    cache.set(name, v);
  }
  return v;
}

/** Validates `body` against a named schema; throws a 400 naming the first offending field. */
export function validateBody<T>(name: string, body: unknown): T {
  const v = schemaValidator(name);
  if (v(body)) return body as T;
  const e = v.errors?.[0];
  if (!e) throw new RackError('bad_request', 'invalid body');
  const where = e.instancePath === '' ? 'body' : e.instancePath.slice(1).replaceAll('/', '.');
  let what = e.message ?? 'is invalid';
  if (e.keyword === 'additionalProperties') {
    what = `has unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  } else if (e.keyword === 'enum') {
    what = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  } else if (e.keyword === 'propertyNames') {
    what = 'has a key that is not a valid arg name (letters, digits, _; not starting with a digit or rack_)';
  }
  throw new RackError('bad_request', `${where} ${what}`);
}
