/**
 * K3s servers on the external etcd, over SSH: install or re-point them one at a time (concurrent
 * first starts race, k3s#2914), each after proving from the host that the datastore answers with
 * exactly the files its config names; then fetch the kubeconfig into the workspace.
 */
import { mkdir, readdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { parse, stringify } from 'yaml';
import { K3sEtcdError } from '../errors';
import { writeFileAtomic } from '../files/atomicWrite';
import { ignoreSecretsFolder } from '../pki/gitignore';
import type { Cluster, Host } from '../inventory/types';
import { clientEndpoints, k3sServers, selectK3sServers } from '../inventory/select';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { openerFor, type HereHost } from '../thisHost/terminal';
import type { HostPlan } from '../plan/steps';
import {
  runJobs,
  type HostJob,
  type HostRun,
  type HostTransport,
  type RunHooks,
} from '../plan/runner';
import { checkDatastoreFromHost, requireDatastore } from './datastoreCheck';
import {
  K3S_KUBECONFIG,
  checkK3sFacts,
  datastoreClientFiles,
  datastoreEndpoint,
  k3sFactsCommand,
  parseK3sFacts,
  planK3sServer,
  repointPlan,
  K3S_CONFIG,
  type K3sFacts,
} from './server';
import { tokenSecret } from '../k3sHost/token';
import { generateToken, type TokenStore } from './token';
import { k3sStateCommand, parseK3sState, type K3sServerState } from './state';
import { BACKUPS_DIR, KUBECONFIG_DIR } from '../files/workspace';

/** A backup folder's name: the UTC time it was made (`backupStamp`). */
export const BACKUP_STAMP = /^\d{8}T\d{6}Z$/;

/** One backup of a host's K3s state in the workspace. */
export interface BackupEntry {
  /** The folder's name: the UTC time it was made. */
  stamp: string;
  /** backups/<host>/<stamp>/ under the workspace. */
  dir: string;
}

/**
 * The backups of `host` in the workspace, newest first: folders of backups/<host>/ named as
 * backups are named (their UTC time) that hold their manifest. Anything else there is not ours.
 */
export async function listBackups(workspaceDir: string, host: string): Promise<BackupEntry[]> {
  const root = join(workspaceDir, BACKUPS_DIR, host);
  const stamps = (await readdir(root).catch(() => [] as string[]))
    .filter((t) => BACKUP_STAMP.test(t))
    .sort()
    .reverse();
  const out: BackupEntry[] = [];
  for (const stamp of stamps) {
    const dir = join(root, stamp);
    const ok = await access(join(dir, 'manifest.json')).then(
      () => true,
      () => false,
    );
    if (ok) out.push({ stamp, dir });
  }
  return out;
}

/** The newest backup folder of `host` in the workspace (backups/<host>/<time>/ with its manifest). */
export async function latestBackup(
  workspaceDir: string,
  host: string,
): Promise<string | undefined> {
  return (await listBackups(workspaceDir, host))[0]?.dir;
}

/** Is there a backup of `host`'s K3s state in the workspace? */
export async function hasBackup(workspaceDir: string, host: string): Promise<boolean> {
  return (await latestBackup(workspaceDir, host)) !== undefined;
}

export async function readK3sFacts(
  t: HostTransport,
  host: Host,
  signal?: AbortSignal,
): Promise<K3sFacts> {
  const r = await t.exec(k3sFactsCommand(), { sudo: true, ...(signal ? { signal } : {}) });
  if (r.code !== 0)
    throw new K3sEtcdError(
      'provision-step-failed',
      `${host.name}: cannot read the host's K3s facts: ${r.stderr.trim() || `exit ${r.code}`}`,
    );
  return parseK3sFacts(r.stdout);
}

export interface K3sInstallOptions extends RunHooks {
  hosts?: string[];
  dryRun: boolean;
  ssh: SshContext;
  tokens: TokenStore;
  /** The inventory's folder: backups/ and kubeconfig/ live here. */
  workspaceDir: string;
  /** Overrides k3s.offlineDir and makes the install offline. */
  offlineDir?: string;
  /** The host this window runs on: its steps run here (its terminal), the others over SSH. */
  here?: HereHost;
  /**
   * Only for `migrate embedded-to-external`, once the embedded data is verified in this etcd:
   * servers with --cluster-init and embedded data are re-pointed instead of refused, their
   * embedded data moved aside (named by this UTC time), the flag taken out of the unit.
   */
  embeddedMove?: { stamp: string };
}

export interface K3sInstallResult {
  runs: HostRun[];
  /** Where the token came from: stored, borrowed from a server, or generated. */
  token: 'stored' | 'from-server' | 'generated';
  /** After a real run: the kubeconfig written into the workspace. */
  kubeconfig?: string;
}

/** The stored token, else a server's, else a new one (stored only by a real run). */
async function resolveToken(
  cluster: Cluster,
  servers: readonly Host[],
  opts: K3sInstallOptions,
): Promise<{ token: string; source: K3sInstallResult['token'] }> {
  const stored = await opts.tokens.get(cluster.name);
  if (stored) return { token: stored, source: 'stored' };
  for (const h of servers) {
    let t: HostTransport | undefined;
    try {
      t = await openerFor(cluster, h, opts.ssh, opts.here)(opts.signal);
      const facts = await readK3sFacts(t, h, opts.signal);
      if (facts.token) {
        opts.onLine?.(
          h.name,
          `token: using the one this server already has (kept in ${opts.tokens.where})`,
        );
        return { token: tokenSecret(facts.token), source: 'from-server' };
      }
    } catch {
      // unreachable here: the job reports it
    } finally {
      t?.close();
    }
  }
  return { token: generateToken(), source: 'generated' };
}

/** Installs or re-points K3s servers on the external etcd, one at a time. */
export async function installK3s(
  input: Cluster,
  opts: K3sInstallOptions,
): Promise<K3sInstallResult> {
  const cluster: Cluster = opts.offlineDir
    ? { ...input, k3s: { ...input.k3s, install: 'offline', offlineDir: opts.offlineDir } }
    : input;
  const servers = selectK3sServers(cluster, opts.hosts);
  // Bad input first, before any connection: an empty endpoint list, missing certificate files.
  datastoreEndpoint(cluster);
  const files = await datastoreClientFiles(cluster);
  const { token, source } = await resolveToken(cluster, servers, opts);
  if (!opts.dryRun && source !== 'stored') await opts.tokens.set(cluster.name, token);

  const jobs: HostJob[] = servers.map((host) => ({
    host: host.name,
    open: openerFor(cluster, host, opts.ssh, opts.here),
    plan: async (t, signal): Promise<HostPlan> => {
      const facts = await readK3sFacts(t, host, signal);
      checkK3sFacts(host, facts, {
        token,
        backedUp: await hasBackup(opts.workspaceDir, host.name),
        ...(opts.embeddedMove ? { embeddedMove: true } : {}),
      });
      const checks = await checkDatastoreFromHost(
        t,
        host.name,
        clientEndpoints(cluster),
        files,
        { curl: facts.curl, ...(facts.etcdctl ? { etcdctl: facts.etcdctl } : {}) },
        signal,
      );
      for (const w of requireDatastore(host.name, checks)) opts.onLine?.(host.name, w);
      opts.onLine?.(
        host.name,
        `datastore check from ${host.name}: ${checks.filter((c) => c.ok).length} of ${checks.length} members healthy with the files config.yaml names`,
      );
      return planK3sServer({
        cluster,
        host,
        facts,
        token,
        ...(opts.embeddedMove ? { embeddedMove: opts.embeddedMove } : {}),
      });
    },
  }));
  const runs = await runJobs(jobs, { ...opts, sequential: true });
  const result: K3sInstallResult = { runs, token: source };
  const ok = runs.every((r) => r.status === 'changed' || r.status === 'unchanged');
  const first = servers[0];
  if (!opts.dryRun && ok && first) {
    result.kubeconfig = await fetchKubeconfig(cluster, first, opts);
    opts.onLine?.(first.name, `kubeconfig written to ${result.kubeconfig} (0600)`);
  }
  return result;
}

/** `server: https://127.0.0.1:6443` → the host's address; `default` names → the cluster's. */
export function rewriteKubeconfig(text: string, cluster: string, address: string): string {
  type Name = string | undefined;
  interface Named {
    name?: Name;
    cluster?: { server?: Name };
    context?: { cluster?: Name; user?: Name };
  }
  const kc = parse(text) as {
    clusters?: Named[];
    contexts?: Named[];
    users?: Named[];
    'current-context'?: Name;
  };
  const host = isIP(address) === 6 ? `[${address}]` : address;
  const rename = (v: Name): Name => (v === 'default' ? cluster : v);
  for (const c of kc.clusters ?? []) {
    c.name = rename(c.name);
    if (c.cluster?.server)
      c.cluster.server = c.cluster.server.replace(
        /^https:\/\/(127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0)(?=:)/,
        `https://${host}`,
      );
  }
  for (const c of kc.contexts ?? []) {
    c.name = rename(c.name);
    if (c.context) {
      c.context.cluster = rename(c.context.cluster);
      c.context.user = rename(c.context.user);
    }
  }
  for (const u of kc.users ?? []) u.name = rename(u.name);
  kc['current-context'] = rename(kc['current-context']);
  return stringify(kc);
}

/** Fetches /etc/rancher/k3s/k3s.yaml from `host` into kubeconfig/<cluster>.yaml (0600). */
export async function fetchKubeconfig(
  cluster: Cluster,
  host: Host,
  opts: { ssh: SshContext; workspaceDir: string; signal?: AbortSignal; here?: HereHost },
): Promise<string> {
  const t = await openerFor(cluster, host, opts.ssh, opts.here)(opts.signal);
  try {
    const r = await t.exec(`cat ${K3S_KUBECONFIG}`, {
      sudo: true,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (r.code !== 0)
      throw new K3sEtcdError(
        'provision-step-failed',
        `${host.name}: cannot read ${K3S_KUBECONFIG}: ${r.stderr.trim() || `exit ${r.code}`} (is K3s running there?)`,
      );
    const dir = join(opts.workspaceDir, KUBECONFIG_DIR);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await ignoreSecretsFolder(opts.workspaceDir, KUBECONFIG_DIR);
    const file = join(dir, `${cluster.name}.yaml`);
    await writeFileAtomic(file, rewriteKubeconfig(r.stdout, cluster.name, host.address), {
      mode: 0o600,
    });
    return file;
  } finally {
    t.close();
  }
}

/**
 * After a member's address changed: on every K3s server whose config.yaml's datastore-endpoint
 * names `from` (the old client URL), that line is rewritten to name `to`, and K3s is restarted
 * and waited for, one server at a time. The rest of config.yaml is kept as it is (a dated copy
 * of the old one stays beside it). Servers that do not name `from` are left alone.
 */
export async function repointK3sServers(
  cluster: Cluster,
  opts: RunHooks & { from: string; to: string; ssh: SshContext; here?: HereHost },
): Promise<HostRun[]> {
  const servers = k3sServers(cluster);
  const jobs: HostJob[] = servers.map((host) => ({
    host: host.name,
    open: openerFor(cluster, host, opts.ssh, opts.here),
    plan: async (t, signal): Promise<HostPlan> => {
      const r = await t.exec(`cat ${K3S_CONFIG} 2>/dev/null || true`, {
        sudo: true,
        ...(signal ? { signal } : {}),
      });
      const lines = r.stdout.split('\n');
      const i = lines.findIndex((l) => /^datastore-endpoint:/.test(l));
      const line = i >= 0 ? (lines[i] as string) : '';
      const names = line.split(/[\s,"']+/).includes(opts.from);
      if (!names) {
        opts.onLine?.(host.name, `${K3S_CONFIG} does not name ${opts.from}: left as it is`);
        return { host: host.name, title: `K3s server ${host.name}`, steps: [], payloads: [] };
      }
      lines[i] = line.split(opts.from).join(opts.to);
      const facts = await readK3sFacts(t, host, signal);
      return repointPlan(host, facts, Buffer.from(lines.join('\n')));
    },
  }));
  return runJobs(jobs, { ...opts, dryRun: false, sequential: true });
}

/** Reads a K3s server's state over SSH; a failure is reported in the state, never thrown. */
export async function readK3sServerState(
  cluster: Cluster,
  host: Host,
  ssh: SshContext,
  signal?: AbortSignal,
): Promise<K3sServerState> {
  try {
    const t = await sshOpener(cluster, host, ssh)(signal);
    try {
      const r = await t.exec(k3sStateCommand(), { sudo: true, ...(signal ? { signal } : {}) });
      return parseK3sState(r.stdout);
    } finally {
      t.close();
    }
  } catch (err) {
    return {
      installed: false,
      at: new Date().toISOString(),
      error: err instanceof Error ? err.message : String(err),
    };
  }
}
