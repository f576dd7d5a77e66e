/**
 * "This window runs on inventory host X", decided from identities, never from the kind of remote
 * connection: the extension host's own (host name, interface addresses, /etc/machine-id) against
 * each inventory host's, read over SSH (`identityCommand`) and parsed as hostile input.
 *
 * A host is this machine when both machine ids are known and equal and, besides, the host name
 * or an identifying address is the same; without a machine id on either side, the host name and
 * an identifying address must both be the same. Loopback, link-local and unspecified addresses
 * identify nothing (every machine has 127.0.0.1; hosts sharing this machine's network share all
 * its addresses), nor do the names `localhost*`. Containers that share a kernel (nspawn) have
 * their own machine id. When more than one host looks like this machine, none is taken.
 */
import { isIP } from 'node:net';

export interface HostIdentity {
  /** `uname -n`: the kernel's host name (lowercase). */
  hostname: string;
  /** /etc/machine-id (32 lowercase hex digits), when the machine has one. */
  machineId?: string;
  /** Interface addresses, canonical (IPv6 compressed, lowercase, no zone). */
  addresses: string[];
}

/** Read-only, no root needed: the host's identity, one `key=value` a line. */
export const identityCommand = [
  'echo "hostname=$(uname -n)"',
  'echo "machine_id=$(cat /etc/machine-id 2>/dev/null || cat /var/lib/dbus/machine-id 2>/dev/null || true)"',
  "echo \"addresses=$( { ip -o addr show 2>/dev/null || true; } | awk '{print $4}' | cut -d/ -f1 | tr '\\n' ' ')\"",
].join('\n');

const HOSTNAME = /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/;
const MACHINE_ID = /^[0-9a-f]{32}$/;
const MAX_ADDRESSES = 256;

/** `address` as one canonical form (IPv6 compressed, IPv4-mapped unwrapped), or undefined. */
export function canonicalAddress(address: string): string | undefined {
  const a = address
    .trim()
    .toLowerCase()
    .replace(/%[\w.-]+$/, '');
  const kind = isIP(a);
  if (kind === 4) return a.split('.').map(Number).join('.');
  if (kind !== 6) return undefined;
  // The URL parser compresses IPv6 and writes an IPv4-mapped tail in hex: unwrap it here.
  const host = new URL(`http://[${a}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  }
  return host;
}

/** Whether a canonical address can tell machines apart (not loopback, link-local, unspecified). */
export function identifyingAddress(address: string): boolean {
  if (isIP(address) === 4) return !/^(127\.|169\.254\.|0\.)/.test(address);
  if (isIP(address) !== 6) return false;
  return address !== '::' && address !== '::1' && !/^fe[89ab][0-9a-f]?:/.test(address);
}

function identifyingName(name: string): boolean {
  return name !== '' && !/^localhost(\.|$)/.test(name);
}

/**
 * Parses `identityCommand`'s output (hostile: a host may print anything): values that are not a
 * host name, a machine id or an IP address are dropped; a line repeated keeps its first value.
 */
export function parseIdentity(out: string): HostIdentity {
  let hostname: string | undefined;
  let machineId: string | undefined;
  let addresses: string[] | undefined;
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const key = line.slice(0, i);
    const value = line.slice(i + 1).trim();
    if (key === 'hostname' && hostname === undefined) {
      const v = value.toLowerCase();
      hostname = v.length <= 253 && HOSTNAME.test(v) ? v : '';
    } else if (key === 'machine_id' && machineId === undefined) {
      machineId = MACHINE_ID.test(value) ? value : '';
    } else if (key === 'addresses' && addresses === undefined) {
      addresses = uniqueAddresses(value.split(/\s+/).slice(0, MAX_ADDRESSES));
    }
  }
  return {
    hostname: hostname ?? '',
    ...(machineId ? { machineId } : {}),
    addresses: addresses ?? [],
  };
}

function uniqueAddresses(list: readonly string[]): string[] {
  const out = new Set<string>();
  for (const a of list) {
    const c = canonicalAddress(a);
    if (c) out.add(c);
  }
  return [...out];
}

/** An identity from values that were stored (the cache): the same checks as a host's output. */
export function checkedIdentity(value: unknown): HostIdentity | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v['hostname'] !== 'string' || !Array.isArray(v['addresses'])) return undefined;
  if (v['machineId'] !== undefined && typeof v['machineId'] !== 'string') return undefined;
  if (!v['addresses'].every((a): a is string => typeof a === 'string')) return undefined;
  const id = parseIdentity(
    [
      `hostname=${v['hostname']}`,
      `machine_id=${String(v['machineId'] ?? '')}`,
      `addresses=${v['addresses'].join(' ')}`,
    ]
      .map((l) => l.replace(/\n/g, ' '))
      .join('\n'),
  );
  return id.hostname === v['hostname'] && id.machineId === v['machineId'] ? id : undefined;
}

export interface IdentityMatch {
  match: boolean;
  /** Why, in words for the preview: "same machine id and host name edge-1". */
  why: string;
}

/** Whether `them` (an inventory host's identity) is the machine `me`. */
export function sameMachine(me: HostIdentity, them: HostIdentity): IdentityMatch {
  const mine = new Set(me.addresses.filter(identifyingAddress));
  const shared = them.addresses.filter((a) => identifyingAddress(a) && mine.has(a));
  const name =
    identifyingName(me.hostname) && me.hostname === them.hostname ? me.hostname : undefined;
  const alsoSame = [
    ...(name ? [`host name ${name}`] : []),
    ...(shared.length ? [`address ${shared.join(', ')}`] : []),
  ].join(' and ');
  if (me.machineId && them.machineId) {
    if (me.machineId !== them.machineId) return { match: false, why: 'another machine id' };
    if (!alsoSame)
      return {
        match: false,
        why: 'the same machine id but another host name and no address in common (a cloned image?)',
      };
    return { match: true, why: `the same machine id and ${alsoSame}` };
  }
  if (name && shared.length) return { match: true, why: `the same ${alsoSame} (no machine id)` };
  return { match: false, why: name ? 'no identifying address in common' : 'another host name' };
}

/** One inventory host as the decision sees it: its identity, or why it could not be read. */
export interface HostIdentityRead {
  host: string;
  identity?: HostIdentity;
  /** Why the identity is missing (cannot connect...). */
  unread?: string;
}

export interface ThisHostDecision {
  /** The inventory host this window runs on, if exactly one is. */
  local?: string;
  /** Per host, in words: "edge-1: this machine (the same machine id and host name edge-1)". */
  reasons: Record<string, string>;
}

/** Which inventory host (if any) this machine is; ambiguity means none. */
export function decideThisHost(
  me: HostIdentity,
  hosts: readonly HostIdentityRead[],
): ThisHostDecision {
  const reasons: Record<string, string> = {};
  const matches: string[] = [];
  for (const h of hosts) {
    if (!h.identity) {
      reasons[h.host] = `its identity could not be read over SSH (${h.unread ?? 'not read'})`;
      continue;
    }
    const m = sameMachine(me, h.identity);
    reasons[h.host] = m.match ? `this machine: ${m.why}` : `another machine: ${m.why}`;
    if (m.match) matches.push(h.host);
  }
  if (matches.length > 1) {
    for (const h of matches)
      reasons[h] =
        `looks like this machine, as do ${matches.filter((x) => x !== h).join(', ')}: none is taken for it`;
    return { reasons };
  }
  return matches[0] ? { local: matches[0], reasons } : { reasons };
}
