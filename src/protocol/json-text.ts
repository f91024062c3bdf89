/**
 * JSON text that goes into an answer as it is. Shared memory keeps each value as canonical JSON
 * text; parsing a 900 KB value only to write it out again, and building strings of that size at
 * all, cost most of an answer's time, and an answer's time is what every other client waits for
 * on the kernel's one thread. As UTF-8 bytes it is copied, never decoded.
 */
export class JsonText {
  constructor(readonly text: string | Buffer) {}

  /** Whatever serializes it the plain way (JSON.stringify) still gets the value. */
  toJSON(): unknown {
    return JSON.parse(this.text.toString());
  }
}

/**
 * JSON.stringify, except that a JsonText is written as it is when it is the value itself or a
 * field of a plain object up to two levels down (an answer envelope, its result); deeper ones go
 * the plain (slower, equal) way. When a JsonText held bytes, the answer is the text's UTF-8 bytes
 * in pieces, to be written one after the other: a MiB value is not copied into a new buffer.
 */
export function encodeJson(value: unknown, depth = 2): string | Buffer[] {
  // Most answers hold no JsonText (a heartbeat's, a send's): one JSON.stringify, nothing else made.
  if (!(value instanceof JsonText) && !holdsText(value, depth)) return JSON.stringify(value);
  const parts: Array<string | Buffer> = [];
  encodeInto(parts, value, depth);
  return parts.every((p) => typeof p === 'string') ? parts.join('') : parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p));
}

function encodeInto(parts: Array<string | Buffer>, value: unknown, depth: number): void {
  if (value instanceof JsonText) {
    parts.push(value.text);
    return;
  }
  if (!holdsText(value, depth)) {
    parts.push(JSON.stringify(value));
    return;
  }
  let sep = '{';
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    parts.push(`${sep}${JSON.stringify(key)}:`);
    encodeInto(parts, v, depth - 1);
    sep = ',';
  }
  parts.push(sep === '{' ? '{}' : '}');
}

function holdsText(v: unknown, depth: number): boolean {
  if (depth === 0 || !isPlainObject(v)) return false;
  // A loop rather than Object.values(v).some(...): no array and no closure per answer.
  for (const key in v) {
    const f = v[key];
    if (f instanceof JsonText || holdsText(f, depth - 1)) return true;
  }
  return false;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}
