import { describe, expect, it } from 'vitest';
import { encodeJson, JsonText } from './json-text.js';

describe('encodeJson', () => {
  it('writes JsonText unparsed where an answer holds it, and equals JSON.stringify of the parsed value', () => {
    const stored = '{"a":[1,2,{"b":"x\\u0000y"}],"c":null}';
    const reply = { id: 7, ok: true, result: { value: new JsonText(stored), version: 3, skip: undefined } };
    const text = encodeJson(reply);
    expect(text).toBe(`{"id":7,"ok":true,"result":{"value":${stored},"version":3}}`);
    expect(JSON.parse(String(text))).toEqual({ id: 7, ok: true, result: { value: JSON.parse(stored), version: 3 } });
    expect(text).toBe(JSON.stringify(reply));
  });

  it('is JSON.stringify for everything else, strings that look like markers included', () => {
    for (const v of [null, 1, 'x', [new JsonText('[1]')], { a: { b: { c: new JsonText('2') } } }, { s: '\u0000json', d: new Date(0) }]) {
      expect(encodeJson(v)).toBe(JSON.stringify(v));
    }
    expect(encodeJson(new JsonText('"top"'))).toBe('"top"');
  });

  it('answers bytes in pieces when a JsonText holds bytes, the value itself never copied', () => {
    const bytes = Buffer.from('{"é":[1,"x"]}');
    const parts = encodeJson({ id: 1, ok: true, result: { value: new JsonText(bytes), version: 2 } });
    expect(Array.isArray(parts)).toBe(true);
    expect((parts as Buffer[]).some((p) => p === bytes)).toBe(true);
    expect(JSON.parse(Buffer.concat(parts as Buffer[]).toString())).toEqual({ id: 1, ok: true, result: { value: { é: [1, 'x'] }, version: 2 } });
  });
});
