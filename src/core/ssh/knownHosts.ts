/**
 * Host-key verification against OpenSSH's known_hosts: plain and hashed (`|1|salt|hash`) host
 * patterns, `[host]:port` for non-standard ports, wildcards and negation, and the `@revoked`
 * marker. `@cert-authority` lines are not host keys and are ignored here. Never "accept any key".
 */
import { createHash, createHmac } from 'node:crypto';

export interface KnownHostEntry {
  /** 1-based line in the file, for messages. */
  line: number;
  marker?: 'revoked' | 'cert-authority';
  patterns: string;
  keyType: string;
  /** Base64 of the public key blob. */
  key: string;
}

export type HostKeyVerdict =
  | { status: 'match'; line: number }
  | { status: 'unknown' }
  | { status: 'changed'; lines: number[]; knownTypes: string[] }
  | { status: 'revoked'; line: number };

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
      marker = fields[0] === '@revoked' ? 'revoked' : 'cert-authority';
      fields.shift();
    }
    const [patterns, keyType, key] = fields;
    if (!patterns || !keyType || !key) return;
    out.push({ line: i + 1, ...(marker ? { marker } : {}), patterns, keyType, key });
  });
  return out;
}

/** The name OpenSSH looks up: `host`, or `[host]:port` when the port is not 22. */
export function knownHostsName(host: string, port: number): string {
  // ssh lowercases the host name before looking it up (and before hashing it).
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function hashedMatches(pattern: string, name: string): boolean {
  const [, magic, salt, hash] = pattern.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
  return mac === hash;
}

function globToRegex(glob: string): RegExp {
  // Escape every regex metacharacter except the glob's own * and ? ([host]:port has brackets).
  const esc = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${esc}$`, 'i');
}

/** Whether an entry's host patterns name `name` (negated patterns exclude). */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (globToRegex(p.slice(1)).test(name)) return false;
    } else if (globToRegex(p).test(name)) {
      matched = true;
    }
  }
  return matched;
}

/** Checks the key a server offered against the known_hosts entries for that host and port. */
export function verifyHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  keyType: string,
  keyBase64: string,
): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const forHost = entries.filter(
    (e) => e.marker !== 'cert-authority' && patternsMatch(e.patterns, name),
  );
  const revoked = forHost.find((e) => e.marker === 'revoked' && e.key === keyBase64);
  if (revoked) return { status: 'revoked', line: revoked.line };
  const match = forHost.find((e) => !e.marker && e.keyType === keyType && e.key === keyBase64);
  if (match) return { status: 'match', line: match.line };
  const others = forHost.filter((e) => !e.marker);
  if (others.length === 0) return { status: 'unknown' };
  return {
    status: 'changed',
    lines: others.map((e) => e.line),
    knownTypes: [...new Set(others.map((e) => e.keyType))],
  };
}

/** `SHA256:…` as `ssh-keygen -lf` prints it (unpadded base64 of the blob's SHA-256). */
export function sha256Fingerprint(keyBase64: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(keyBase64, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** The line to append after the user accepts an unknown host (hashed, as HashKnownHosts does). */
export function knownHostsLine(
  host: string,
  port: number,
  keyType: string,
  keyBase64: string,
  salt: Buffer,
): string {
  const name = knownHostsName(host, port);
  const hash = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${hash} ${keyType} ${keyBase64}`;
}
