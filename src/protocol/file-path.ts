import { RackError } from '../common/errors.js';

/**
 * Checks a file path: `/`-separated names, no `.` or `..` segment, not absolute, no NUL, control
 * characters or backslash, at most 1024 bytes, each name at most 255 bytes.
 */
export function checkPath(path: string): string {
  const bad = (why: string): never => {
    throw new RackError('bad_request', `file path ${JSON.stringify(path.slice(0, 80))} ${why}`);
  };
  if (typeof path !== 'string' || path.length === 0) bad('is empty');
  if (Buffer.byteLength(path) > 1024) bad('is longer than 1024 bytes');
  if (path.startsWith('/')) bad('is absolute: give it relative to the group root');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(path)) bad('holds a control character or a backslash');
  for (const seg of path.split('/')) {
    if (seg === '') bad('has an empty segment');
    if (seg === '.' || seg === '..') bad('has a "." or ".." segment');
    // What every file system (and Swift's object names, segment by segment) allows.
    if (Buffer.byteLength(seg) > 255) bad('has a name longer than 255 bytes');
  }
  return path;
}
