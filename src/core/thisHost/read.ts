/**
 * The identities the decision compares: this machine's (read here), and each inventory host's,
 * read over SSH once and remembered. The memory is keyed by the SSH target (user, address, port
 * and jump hosts) and holds the host key it was read through: an entry counts only while the
 * known_hosts files still trust that key for that address, so another machine answering there
 * later is read afresh, never mistaken for the one remembered. Stored entries are checked as
 * hostile input, like the host's own output.
 */
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { errorMessage } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { readKnownHosts, hostKeyName } from '../ssh/hostKeys';
import { judgeHostKey, parseKnownHosts, sha256Fingerprint, verifyHostKey } from '../ssh/knownHosts';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { resolveTarget, type SshHop, type SshTarget } from '../ssh/target';
import {
  checkedIdentity,
  decideThisHost,
  identityCommand,
  parseIdentity,
  sameMachine,
  type HostIdentity,
  type HostIdentityRead,
  type ThisHostDecision,
} from './identity';

/** Where identities are remembered (the editor's global state; a map in tests). */
export interface IdentityCache {
  get(key: string): unknown;
  /** May return a promise (awaited). */
  set(key: string, value: CachedIdentity): unknown;
}

export interface CachedIdentity {
  /** SHA256 fingerprint of the host key the identity was read through. */
  hostKey: string;
  identity: HostIdentity;
  /** ISO 8601. */
  readAt: string;
}

/** The cache key of a target: every hop's user, address and port, last hop first. */
export function identityCacheKey(target: SshTarget): string {
  const hop = (h: SshHop) => `${h.user}@${hostKeyName(h)}`;
  return `k3sEtcd.identity ${[hop(target), ...target.jumps.map(hop).reverse()].join(' via ')}`;
}

/** A stored entry, checked: undefined when malformed. */
export function checkedCacheEntry(value: unknown): CachedIdentity | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const identity = checkedIdentity(v['identity']);
  if (
    !identity ||
    typeof v['hostKey'] !== 'string' ||
    !/^SHA256:[A-Za-z0-9+/]{43}$/.test(v['hostKey'])
  )
    return undefined;
  return {
    hostKey: v['hostKey'],
    identity,
    readAt: typeof v['readAt'] === 'string' ? v['readAt'] : '',
  };
}

/** Whether the known_hosts files still trust a key with `fingerprint` for the target. */
export async function stillTrusted(target: SshTarget, fingerprint: string): Promise<boolean> {
  const known = await readKnownHosts(target);
  for (const file of known) {
    for (const e of parseKnownHosts(file.text)) {
      if (e.marker || sha256Fingerprint(e.key) !== fingerprint) continue;
      if (verifyHostKey([e], target.hostName, target.port, e.keyType, e.key).status !== 'match')
        continue;
      return judgeHostKey(known, target.hostName, target.port, e.keyType, e.key).status === 'match';
    }
  }
  return false;
}

/** This machine's identity: the extension host's (or the CLI's) own. */
export async function localIdentity(): Promise<HostIdentity> {
  const machineId = await readFile('/etc/machine-id', 'utf8')
    .catch(() => readFile('/var/lib/dbus/machine-id', 'utf8'))
    .catch(() => '');
  const addresses = Object.values(networkInterfaces())
    .flat()
    .map((i) => i?.address ?? '');
  return parseIdentity(
    [
      `hostname=${hostname()}`,
      `machine_id=${machineId.trim()}`,
      `addresses=${addresses.join(' ')}`,
    ].join('\n'),
  );
}

/** One host's identity over SSH (no root needed), remembered under its host key. */
async function readOne(
  cluster: Cluster,
  host: Host,
  ssh: SshContext,
  cache: IdentityCache,
  key: string,
  signal?: AbortSignal,
): Promise<HostIdentityRead> {
  try {
    const t = await sshOpener(cluster, host, ssh)(signal);
    try {
      const r = await t.exec(identityCommand, signal ? { signal } : {});
      if (r.code !== 0) return { host: host.name, unread: `exit ${r.code}` };
      const identity = parseIdentity(r.stdout);
      await cache.set(key, { hostKey: t.hostKey, identity, readAt: new Date().toISOString() });
      return { host: host.name, identity };
    } finally {
      t.close();
    }
  } catch (err) {
    return { host: host.name, unread: errorMessage(err).split('\n')[0] ?? 'failed' };
  }
}

/**
 * Each host's identity: remembered when its entry is well-formed and its host key still
 * trusted, otherwise read over SSH. An entry naming this machine's id that no longer matches
 * (the addresses changed) is read again.
 */
export async function hostIdentities(
  cluster: Cluster,
  hosts: readonly Host[],
  ssh: SshContext,
  cache: IdentityCache,
  me: HostIdentity,
  signal?: AbortSignal,
): Promise<HostIdentityRead[]> {
  return Promise.all(
    hosts.map(async (host) => {
      const target = resolveTarget(cluster, host, ssh.env);
      const key = identityCacheKey(target);
      const entry = checkedCacheEntry(cache.get(key));
      if (
        entry &&
        (await stillTrusted(target, entry.hostKey)) &&
        !(entry.identity.machineId === me.machineId && !sameMachine(me, entry.identity).match)
      )
        return { host: host.name, identity: entry.identity };
      return readOne(cluster, host, ssh, cache, key, signal);
    }),
  );
}

/** Which of `hosts` this machine is, if any, with every host's reason. */
export async function thisHostAmong(
  cluster: Cluster,
  hosts: readonly Host[],
  ssh: SshContext,
  cache: IdentityCache,
  signal?: AbortSignal,
): Promise<ThisHostDecision> {
  const me = await localIdentity();
  return decideThisHost(me, await hostIdentities(cluster, hosts, ssh, cache, me, signal));
}
