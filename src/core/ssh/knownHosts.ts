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

/** One known_hosts file's text, and whose it is. */
export interface KnownHostsText {
  file: string;
  text: string;
  /**
   * The user's own file (ssh config's UserKnownHostsFile, ~/.ssh/known_hosts, the global one),
   * as opposed to a workspace file named by the inventory, which may only add hosts.
   */
  own: boolean;
}

/** What the known_hosts files together say about the key a host offered. */
export type HostKeyJudgement =
  | { status: 'match'; file: string; line: number }
  | { status: 'unknown' }
  | { status: 'changed'; file: string; lines: number[] }
  | { status: 'revoked'; file: string; line: number }
  /** A workspace file pins this key, but the user's own file knows the host with another. */
  | { status: 'conflict'; file: string; line: number; ownFile: string; ownLines: number[] };

/**
 * Judges the key `host:port` offered against every file: a revocation anywhere wins; the user's
 * own files come before a workspace file, which can add a host they do not know but never
 * replace a key they do (that is a conflict, refused).
 */
export function judgeHostKey(
  known: readonly KnownHostsText[],
  host: string,
  port: number,
  keyType: string,
  key: string,
): HostKeyJudgement {
  const verdicts = known.map((k) => ({
    file: k.file,
    own: k.own,
    v: verifyHostKey(parseKnownHosts(k.text), host, port, keyType, key),
  }));
  for (const { file, v } of verdicts)
    if (v.status === 'revoked') return { status: 'revoked', file, line: v.line };
  const ownMatch = verdicts.find((x) => x.own && x.v.status === 'match');
  if (ownMatch && ownMatch.v.status === 'match')
    return { status: 'match', file: ownMatch.file, line: ownMatch.v.line };
  const ownChanged = verdicts.find((x) => x.own && x.v.status === 'changed');
  if (ownChanged && ownChanged.v.status === 'changed') {
    const pinned = verdicts.find((x) => !x.own && x.v.status === 'match');
    if (pinned && pinned.v.status === 'match')
      return {
        status: 'conflict',
        file: pinned.file,
        line: pinned.v.line,
        ownFile: ownChanged.file,
        ownLines: ownChanged.v.lines,
      };
    return { status: 'changed', file: ownChanged.file, lines: ownChanged.v.lines };
  }
  for (const { file, v } of verdicts)
    if (v.status === 'match') return { status: 'match', file, line: v.line };
  for (const { file, v } of verdicts)
    if (v.status === 'changed') return { status: 'changed', file, lines: v.lines };
  return { status: 'unknown' };
}

/** Key types the files already know for `host:port` (offered first, as OpenSSH orders them). */
export function knownKeyTypes(
  known: readonly KnownHostsText[],
  host: string,
  port: number,
): string[] {
  const types = new Set<string>();
  for (const k of known) {
    for (const e of parseKnownHosts(k.text)) {
      if (e.marker) continue;
      if (verifyHostKey([e], host, port, e.keyType, e.key).status === 'match') types.add(e.keyType);
    }
  }
  return [...types];
}
