/**
 * Binary WebSocket frames: `uint32 BE header length | JSON header | payload bytes`. They carry
 * message payloads and pipe data without base64's 33 % and without a second frame per chunk.
 */
export function encodeBinaryFrame(header: object, payload: Uint8Array): Buffer {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(4 + head.length + payload.length);
  out.writeUInt32BE(head.length, 0);
  head.copy(out, 4);
  out.set(payload, 4 + head.length);
  return out;
}

export function decodeBinaryFrame(frame: Buffer): { header: Record<string, unknown>; payload: Buffer } {
  if (frame.length < 4) throw new Error('binary frame shorter than its length prefix');
  const len = frame.readUInt32BE(0);
  if (len > 64 * 1024 || 4 + len > frame.length) throw new Error('binary frame header length is out of range');
  const header: unknown = JSON.parse(frame.subarray(4, 4 + len).toString('utf8'));
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('binary frame header must be a JSON object');
  return { header: header as Record<string, unknown>, payload: frame.subarray(4 + len) };
}
