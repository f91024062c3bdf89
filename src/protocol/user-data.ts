import yaml from 'js-yaml';

/**
 * What a RACK VM's user_data holds: the process's credentials, beside whatever user_data the
 * user gave. The credentials travel in user_data, not in server metadata, because Nova shows
 * user_data only to admins (OS-EXT-SRV-ATTR:user_data) while every member of the project reads
 * metadata with `openstack server show`; inside the VM, cloud-init keeps user_data root-only.
 *
 * The credentials are a cloud-config document with a `rack:` key, which cloud-init accepts and
 * ignores (no module reads it, no warning). With user_data of the user's own, both go in a MIME
 * multipart, the user's part with the content type cloud-init would give it.
 */

export interface Credentials {
  /** The app's token (RACK_TOKEN): it ends with the process. */
  token: string;
  /** The guest agent's token: its channel only, until the VM is destroyed. */
  agent_token: string;
}

const TOKEN = /^[A-Za-z0-9_-]{8,512}$/;
const BOUNDARY = '==RACK-user-data==';

function credentialsDocument(c: Credentials): string {
  if (!TOKEN.test(c.token) || !TOKEN.test(c.agent_token)) throw new Error('a process token has unexpected characters');
  return `#cloud-config\n# RACK: this VM's process credentials, read by dckinit (cloud-init ignores the key)\nrack:\n  token: ${c.token}\n  agent_token: ${c.agent_token}\n`;
}

/** The content type cloud-init would give a user_data text (its own first-line rules). */
function contentTypeOf(text: string): string {
  const first = text.split('\n', 1)[0]!;
  if (first.startsWith('#cloud-config')) return 'text/cloud-config';
  if (first.startsWith('#!')) return 'text/x-shellscript';
  if (first.startsWith('#include-once')) return 'text/x-include-once-url';
  if (first.startsWith('#include')) return 'text/x-include-url';
  if (first.startsWith('#cloud-boothook')) return 'text/cloud-boothook';
  if (first.startsWith('#part-handler')) return 'text/part-handler';
  if (first.startsWith('## template: jinja')) return 'text/jinja2';
  return 'text/plain';
}

function isMime(text: string): boolean {
  return /^(Content-Type|MIME-Version):/im.test(text.slice(0, 1024).split(/\r?\n\r?\n/)[0] ?? '');
}

/** The user_data a RACK VM boots with: the credentials, and the user's user_data if any. */
export function composeUserData(user: string | null, credentials: Credentials): string {
  const mine = credentialsDocument(credentials);
  if (user === null || user === '') return mine;
  // A MIME document of the user's own goes in whole as a nested part (it has its headers).
  const theirs = isMime(user) ? user.replace(/^\s+/, '') : `Content-Type: ${contentTypeOf(user)}; charset="utf-8"\nContent-Disposition: attachment; filename="user-data"\n\n${user}`;
  return [
    `Content-Type: multipart/mixed; boundary="${BOUNDARY}"`,
    'MIME-Version: 1.0',
    '',
    `--${BOUNDARY}`,
    'Content-Type: text/cloud-config; charset="utf-8"',
    'Content-Disposition: attachment; filename="rack-credentials"',
    '',
    mine,
    `--${BOUNDARY}`,
    theirs,
    `--${BOUNDARY}--`,
    '',
  ].join('\n');
}

interface Part {
  type: string;
  body: string;
}

function headersAndBody(text: string): { headers: Map<string, string>; body: string } {
  const m = /\r?\n\r?\n/.exec(text);
  const head = m ? text.slice(0, m.index) : text;
  const body = m ? text.slice(m.index + m[0].length) : '';
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return { headers, body };
}

/** The leaf parts of a MIME multipart (nested ones walked), decoded; at most `depth` levels. */
function parts(text: string, depth = 4): Part[] {
  const { headers, body } = headersAndBody(text);
  const type = headers.get('content-type') ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (/^multipart\//i.test(type) && boundary && depth > 0) {
    const chunks = body.split(new RegExp(`^--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?[ \\t]*\\r?$`, 'm'));
    // The preamble before the first boundary and the epilogue after the last are not parts; the
    // line break before a boundary belongs to the boundary (RFC 2046).
    return chunks.slice(1, -1).flatMap((chunk) => parts(chunk.replace(/^\r?\n/, '').replace(/\r?\n$/, ''), depth - 1));
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '').toLowerCase();
  const decoded = encoding === 'base64' ? Buffer.from(body, 'base64').toString('utf8') : body;
  return [{ type: type.split(';')[0]!.trim().toLowerCase(), body: decoded }];
}

/** The cloud-config documents of a user_data text (the whole text, or its cloud-config parts). */
export function cloudConfigs(userData: string | null): string[] {
  if (!userData) return [];
  if (userData.startsWith('#cloud-config')) return [userData];
  if (!isMime(userData)) return [];
  return parts(userData)
    .filter((p) => p.type === 'text/cloud-config' || p.body.startsWith('#cloud-config'))
    .map((p) => p.body);
}

/** The RACK credentials in a user_data text, or null when there are none. */
export function credentialsOf(userData: string | null): Credentials | null {
  for (const doc of cloudConfigs(userData)) {
    let parsed: unknown;
    try {
      parsed = yaml.load(doc);
    } catch {
      continue;
    }
    const rack = (parsed as { rack?: { token?: unknown; agent_token?: unknown } } | null)?.rack;
    const token = rack?.token;
    const agent = rack?.agent_token;
    if (typeof token === 'string' && TOKEN.test(token) && typeof agent === 'string' && TOKEN.test(agent)) return { token, agent_token: agent };
  }
  return null;
}
