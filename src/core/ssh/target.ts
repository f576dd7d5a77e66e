/**
 * Where and how to reach a host over SSH: the inventory's own values first, then `~/.ssh/config`
 * (parsed by the maintained `ssh-config` package: HostName, User, Port, IdentityFile, ProxyJump,
 * UserKnownHostsFile), then OpenSSH's defaults, as `ssh` does for command-line options.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import SSHConfig from 'ssh-config';
import { K3sEtcdError } from '../errors';
import type { Cluster, Host } from '../inventory/types';

export interface SshHop {
  /** The name the user wrote (inventory address, alias or ProxyJump entry), for messages. */
  label: string;
  hostName: string;
  port: number;
  user: string;
  /** Identity files in the order OpenSSH tries them; `explicit` ones must exist. */
  identityFiles: { path: string; explicit: boolean }[];
}

export interface SshTarget extends SshHop {
  /** Jump hosts, first to last (ProxyJump). */
  jumps: SshHop[];
  /**
   * The user's own known_hosts files (ssh config's UserKnownHostsFile, else ~/.ssh/known_hosts
   * and the global one): always read; new keys are recorded in the first (never the global one)
   * when there is no workspace file.
   */
  knownHostsFiles: string[];
  /**
   * The cluster's `knownHostsFile` (from the inventory, so from the workspace): it adds hosts and
   * new keys are recorded in it, but it never overrides a key the user's own files know.
   */
  workspaceKnownHostsFile?: string;
}

export interface SshEnvironment {
  home: string;
  /** Text of ~/.ssh/config; undefined when there is none. */
  sshConfig?: string;
}

/** Read (never written): host keys pinned machine-wide. */
export const GLOBAL_KNOWN_HOSTS = '/etc/ssh/ssh_known_hosts';

/** OpenSSH's default identities, tried when no IdentityFile is configured. */
const DEFAULT_IDENTITIES = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk'];

export async function loadSshEnvironment(home = homedir()): Promise<SshEnvironment> {
  try {
    return { home, sshConfig: await readFile(join(home, '.ssh', 'config'), 'utf8') };
  } catch {
    return { home };
  }
}

type Computed = Record<string, string | string[] | undefined>;

function computeFor(env: SshEnvironment, alias: string, user?: string): Computed {
  if (!env.sshConfig) return {};
  try {
    const config = SSHConfig.parse(env.sshConfig);
    return user ? config.compute({ Host: alias, User: user }) : config.compute(alias);
  } catch (err) {
    throw new K3sEtcdError(
      'ssh-config',
      `Cannot read ${join(env.home, '.ssh', 'config')}: ${(err as Error).message}. Fix the file or remove the entry for ${alias}.`,
      { cause: err },
    );
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function all(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** `~/x`, `%d/x` (home) and relative paths (from ~/.ssh), as ssh_config allows. */
function expandConfigPath(p: string, env: SshEnvironment): string {
  const x = p.replace(/^~(?=$|\/)/, env.home).replace(/%d/g, env.home);
  return isAbsolute(x) ? x : join(env.home, '.ssh', x);
}

function parsePort(raw: string | undefined, where: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new K3sEtcdError('ssh-config', `${where}: "${raw}" is not a port number.`);
  }
  return n;
}

/** One `[user@]host[:port]` (or `ssh://user@host:port`) entry of ProxyJump. */
export function parseJumpSpec(spec: string): { user?: string; host: string; port?: number } {
  let s = spec.trim().replace(/^ssh:\/\//, '');
  let user: string | undefined;
  const at = s.lastIndexOf('@');
  if (at >= 0) {
    user = s.slice(0, at);
    s = s.slice(at + 1);
  }
  let host = s;
  let port: number | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) {
    host = bracket[1] ?? s;
    port = parsePort(bracket[2], `ProxyJump ${spec}`);
  } else if (/^[^:]+:\d+$/.test(s)) {
    const i = s.lastIndexOf(':');
    host = s.slice(0, i);
    port = parsePort(s.slice(i + 1), `ProxyJump ${spec}`);
  }
  if (!host) throw new K3sEtcdError('ssh-config', `ProxyJump "${spec}" names no host.`);
  return { ...(user ? { user } : {}), host, ...(port ? { port } : {}) };
}

function hopFor(
  env: SshEnvironment,
  label: string,
  given: { user?: string; port?: number; identityFile?: string },
): SshHop & { proxyJump?: string } {
  const c = computeFor(env, label, given.user);
  const configFiles = all(c['IdentityFile']).map((p) => expandConfigPath(p, env));
  const explicit = [...(given.identityFile ? [given.identityFile] : []), ...configFiles];
  const identityFiles =
    explicit.length > 0
      ? explicit.map((path) => ({ path, explicit: true }))
      : DEFAULT_IDENTITIES.map((n) => ({ path: join(env.home, '.ssh', n), explicit: false }));
  const proxyJump = first(c['ProxyJump']);
  return {
    label,
    hostName: first(c['HostName'])?.replace(/%h/g, label) ?? label,
    port: given.port ?? parsePort(first(c['Port']), `Port for ${label} in ~/.ssh/config`) ?? 22,
    user: given.user ?? first(c['User']) ?? 'root',
    identityFiles,
    ...(proxyJump && proxyJump.toLowerCase() !== 'none' ? { proxyJump } : {}),
  };
}

/** Resolves a host of the inventory to the connection ssh would make. */
export function resolveTarget(cluster: Cluster, host: Host, env: SshEnvironment): SshTarget {
  const label = host.ssh.alias ?? host.address;
  const main = hopFor(env, label, {
    ...(host.ssh.user ? { user: host.ssh.user } : {}),
    ...(host.ssh.port ? { port: host.ssh.port } : {}),
    ...(host.identityFile ? { identityFile: host.identityFile } : {}),
  });

  const jumps: SshHop[] = [];
  const jumpSpec = host.ssh.proxyJump ?? main.proxyJump;
  if (jumpSpec) {
    for (const entry of jumpSpec.split(',')) {
      const j = parseJumpSpec(entry);
      const hop = hopFor(env, j.host, { ...j });
      delete hop.proxyJump; // nested ProxyJump of a jump host is not followed
      jumps.push(hop);
    }
  }

  const c = computeFor(env, label);
  const userKnown = all(c['UserKnownHostsFile'])
    .flatMap((v) => v.split(/\s+/))
    .filter((v) => v && v.toLowerCase() !== 'none')
    .map((p) => expandConfigPath(p, env));
  const knownHostsFiles =
    userKnown.length > 0 ? userKnown : [join(env.home, '.ssh', 'known_hosts'), GLOBAL_KNOWN_HOSTS];

  const { proxyJump: _unused, ...rest } = main;
  void _unused;
  return {
    ...rest,
    jumps,
    knownHostsFiles,
    ...(cluster.knownHostsFile ? { workspaceKnownHostsFile: cluster.knownHostsFile } : {}),
  };
}

/** `user@host:port` for messages. */
export function describeHop(hop: Pick<SshHop, 'user' | 'hostName' | 'port'>): string {
  const host = hop.hostName.includes(':') ? `[${hop.hostName}]` : hop.hostName;
  return `${hop.user}@${host}${hop.port === 22 ? '' : `:${hop.port}`}`;
}
