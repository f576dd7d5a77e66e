/**
 * K3s moved back from the external etcd to SQLite (composed of k3s and migrate): K3s on SQLite
 * runs one server, the one named (the only one by default). `planMoveBack` only reads: every
 * server's K3s, the kept server's config.yaml (rewritten in memory and proven, see
 * k3s/sqliteConfig.ts), its state.db files, and etcd's keys with the token check. `runMoveBack`
 * then stops K3s on every server, one at a time (the others also disabled) BEFORE etcd is read
 * again, so no write made after the read is lost; writes the new kine database on this machine
 * and verifies it (migrate/toSqlite.ts); and re-points the kept server (k3s/sqliteRepoint.ts).
 * The first failure stops the run; a failed re-point puts that server back on etcd (the old
 * config.yaml, K3s restarted, Ready): etcd's data is never changed by any of this.
 */
import type { Etcd3 } from 'etcd3';
import { K3sEtcdError, errorMessage, isCancelled } from '../errors';
import { healthyClient } from '../etcd/connection';
import { sha256File } from '../files/hash';
import { backupStamp } from '../format/stamp';
import type { Cluster, Host } from '../inventory/types';
import { k3sServers } from '../inventory/select';
import { tokenMatches, tokenSecret } from '../k3sHost/token';
import {
  asHostRun,
  runHostPlan,
  runJobs,
  type HostJob,
  type HostRun,
  type RunHooks,
} from '../plan/runner';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { readK3sFacts } from '../k3s/ops';
import { K3S_DB_DIR, K3S_SQLITE, nodeName, type K3sFacts } from '../k3s/server';
import { sqliteConfig, type SqliteConfig } from '../k3s/sqliteConfig';
import {
  asideName,
  backOnEtcdPlan,
  readSqliteFacts,
  sqliteServerPlan,
  stopK3sPlan,
  type SqliteFacts,
} from '../k3s/sqliteRepoint';
import { readEtcd, type EtcdSource } from '../migrate/etcdSource';
import type { MigrationProgress } from '../migrate/progress';
import { migrateToSqlite, requireNewTarget, type ToSqliteResult } from '../migrate/toSqlite';

/** What the move will do, as data every front end words the same way (no secret in it). */
export interface MoveBackPreview {
  cluster: string;
  /** The server that keeps running, on SQLite, and its node name. */
  chosen: string;
  /** Its address in the inventory (where agents join). */
  chosenAddress: string;
  node: string;
  /** The other servers: stopped and disabled (they must rejoin as agents or be reinstalled). */
  others: string[];
  /** Servers of the inventory where no K3s is installed: nothing to stop there. */
  notInstalled: string[];
  /** Servers whose K3s runs now. */
  running: string[];
  removedKeys: string[];
  keptKeys: string[];
  /** K3s's state.db files on the kept server and the dated names they are moved aside to. */
  aside: { from: string; to: string }[];
  stateDb: string;
  /** The new kine database on this machine. */
  target: string;
  /** etcd as read now (the real run reads it again once K3s is stopped everywhere). */
  etcd: {
    revision: string;
    keys: number;
    totalBytes: number;
    leasedKeys: number;
    token: string;
  };
}

export interface MoveBackPlan {
  preview: MoveBackPreview;
  chosen: Host;
  /** Servers to stop, in order: the others first, the kept one last. */
  stops: { host: Host; disable: boolean }[];
  facts: K3sFacts;
  sqlite: SqliteFacts;
  config: SqliteConfig;
  stamp: string;
  /** The token K3s on SQLite starts with (the kept server's own): checked against /bootstrap. */
  token?: string;
}

export interface MoveBackOptions extends RunHooks {
  ssh: SshContext;
  /** The server that keeps running: required when the cluster has several. */
  server?: string;
  /** A token given by the person; else the kept server's own. */
  token?: string;
  /** Where the new state.db is written on this machine (must not exist). */
  target: string;
  now?: Date;
  onProgress?(p: MigrationProgress): void;
}

/** The kept server and the others; several servers and none named is refused, listing them. */
export function chooseServer(cluster: Cluster, name?: string): { chosen: Host; others: Host[] } {
  const servers = k3sServers(cluster);
  const names = servers.map((h) => h.name).join(', ');
  if (servers.length === 0)
    throw new K3sEtcdError(
      'usage',
      `Cluster ${cluster.name} has no host with the role k3s-server in k3s-etcd.yaml: there is no K3s to move back.`,
    );
  const chosen = name ? servers.find((h) => h.name === name) : servers[0];
  if (name && !chosen)
    throw new K3sEtcdError(
      'usage',
      `${name} is not a K3s server of cluster ${cluster.name} (its K3s servers: ${names}).`,
    );
  if (!chosen || (!name && servers.length > 1))
    throw new K3sEtcdError(
      'usage',
      `Cluster ${cluster.name} has ${servers.length} K3s servers (${names}) and K3s on SQLite runs one: name the one that keeps running (--server NAME). The others are stopped and disabled and must rejoin as agents (or be reinstalled).`,
    );
  return { chosen, others: servers.filter((h) => h !== chosen) };
}

/** Reads every server and etcd; changes nothing. */
export async function planMoveBack(cluster: Cluster, opts: MoveBackOptions): Promise<MoveBackPlan> {
  const { chosen, others } = chooseServer(cluster, opts.server);
  requireNewTarget(opts.target);
  const stamp = backupStamp(opts.now ?? new Date());
  const read = async (h: Host) => {
    const t = await sshOpener(cluster, h, opts.ssh)(opts.signal);
    try {
      const facts = await readK3sFacts(t, h, opts.signal);
      const sqlite = h === chosen ? await readSqliteFacts(t, h, opts.signal) : undefined;
      return { facts, sqlite };
    } catch (err) {
      throw new K3sEtcdError(
        'provision-refused',
        `${errorMessage(err).startsWith(h.name) ? '' : `${h.name}: `}${errorMessage(err)}. Every K3s server is read before anything stops. Nothing was changed.`,
      );
    } finally {
      t.close();
    }
  };
  const seen = new Map<Host, Awaited<ReturnType<typeof read>>>();
  for (const h of [chosen, ...others]) seen.set(h, await read(h));
  const mine = seen.get(chosen);
  if (!mine?.sqlite || !mine.facts.installed)
    throw new K3sEtcdError(
      'provision-refused',
      `${chosen.name}: K3s is not installed there, so it cannot keep running on SQLite: name another server (--server). Nothing was changed.`,
    );
  const { facts, sqlite } = mine as { facts: K3sFacts; sqlite: SqliteFacts };
  if (sqlite.otherEndpoints.length > 0)
    throw new K3sEtcdError(
      'provision-refused',
      `${chosen.name}: a datastore endpoint is also named in ${sqlite.otherEndpoints.join(', ')}: K3s would still use etcd after config.yaml is rewritten. Remove it there first. Nothing was changed.`,
    );
  const node = nodeName(chosen, facts);
  const config = sqliteConfig(chosen.name, sqlite.config.toString('utf8'));
  if (opts.token && facts.token && !tokenMatches(opts.token, facts.token))
    throw new K3sEtcdError(
      'k3s-token',
      `The token given is not the one ${chosen.name} holds (/var/lib/rancher/k3s/server/token): K3s on SQLite starts with the server's own token, which must open etcd's /bootstrap key. Nothing was changed.`,
    );
  const token = opts.token ?? (facts.token ? tokenSecret(facts.token) : undefined);
  const src = await readSource(cluster, token, opts);
  const installed = [...others].filter((h) => seen.get(h)?.facts.installed);
  return {
    preview: {
      cluster: cluster.name,
      chosen: chosen.name,
      chosenAddress: chosen.address,
      node,
      others: installed.map((h) => h.name),
      notInstalled: others.filter((h) => !installed.includes(h)).map((h) => h.name),
      running: [chosen, ...others].filter((h) => seen.get(h)?.facts.active).map((h) => h.name),
      removedKeys: config.removed,
      keptKeys: config.kept,
      aside: sqlite.dbFiles.map((f) => ({
        from: `${K3S_DB_DIR}/${f}`,
        to: `${K3S_DB_DIR}/${asideName(f, stamp)}`,
      })),
      stateDb: K3S_SQLITE,
      target: opts.target,
      etcd: {
        revision: src.revision,
        keys: src.keys.length,
        totalBytes: src.totalBytes,
        leasedKeys: src.leasedKeys,
        token: src.token.note,
      },
    },
    chosen,
    stops: [
      ...installed.map((host) => ({ host, disable: true })),
      { host: chosen, disable: false },
    ],
    facts,
    sqlite,
    config,
    stamp,
    ...(token ? { token } : {}),
  };
}

async function withClient<T>(cluster: Cluster, fn: (c: Etcd3) => Promise<T>): Promise<T> {
  const { client } = await healthyClient(cluster, { timeoutMs: 10_000 });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

function readSource(
  cluster: Cluster,
  token: string | undefined,
  opts: MoveBackOptions,
): Promise<EtcdSource> {
  return withClient(cluster, (client) =>
    readEtcd(client, {
      ...(token ? { token } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    }),
  );
}

export type MoveBackPhase = 'stop' | 'migrate' | 'repoint';

export interface MoveBackResult {
  ok: boolean;
  preview: MoveBackPreview;
  stopRuns: HostRun[];
  /** Servers this run stopped (K3s was running there), with whether they were disabled. */
  stopped: { host: string; disabled: boolean }[];
  /** etcd as the run read it, once K3s was stopped everywhere (its keys: not for JSON). */
  source?: EtcdSource;
  migration?: ToSqliteResult;
  /** The verified file's own SHA-256 and size: what the kept server's state.db must have. */
  stateDb?: { sha256: string; bytes: number };
  serverRun?: HostRun;
  /** After a failed re-point: the kept server put back on etcd. */
  rollback?: HostRun;
  failedAt?: MoveBackPhase;
  /** Why it stopped, in words. */
  error?: string;
}

export interface MoveBackRunOptions extends MoveBackOptions {
  /** How long to wait for the node to be Ready (on SQLite, and on etcd after a way back). */
  readySeconds?: number;
  onPhase?(phase: MoveBackPhase, title: string): void;
}

const failedRun = (runs: readonly HostRun[]) =>
  runs.find((r) => r.status === 'failed' || r.status === 'cancelled');

/** Stops, reads, writes, verifies and re-points, as `plan` says; the first failure ends it. */
export async function runMoveBack(
  cluster: Cluster,
  plan: MoveBackPlan,
  opts: MoveBackRunOptions,
): Promise<MoveBackResult> {
  const readySeconds = opts.readySeconds ?? 300;
  const hooks: RunHooks = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };
  const result: MoveBackResult = { ok: false, preview: plan.preview, stopRuns: [], stopped: [] };

  opts.onPhase?.('stop', `K3s stopped on ${plan.stops.map((s) => s.host.name).join(', ')}`);
  const jobs: HostJob[] = plan.stops.map(({ host, disable }) => ({
    host: host.name,
    open: sshOpener(cluster, host, opts.ssh),
    plan: () => Promise.resolve(stopK3sPlan(host, { disable })),
  }));
  result.stopRuns = await runJobs(jobs, { ...hooks, dryRun: false, sequential: true });
  result.stopped = result.stopRuns
    .filter((r) => r.status === 'changed')
    .map((r) => ({
      host: r.host,
      disabled: plan.stops.find((s) => s.host.name === r.host)?.disable ?? false,
    }));
  const stopFail = failedRun(result.stopRuns);
  if (stopFail)
    return {
      ...result,
      failedAt: 'stop',
      error: stopFail.error?.message ?? `${stopFail.host}: ${stopFail.status}`,
    };

  opts.onPhase?.('migrate', `etcd read and written into ${plan.preview.target}, verified`);
  try {
    requireNewTarget(plan.preview.target);
    result.migration = await withClient(cluster, async (client) => {
      const src = await readEtcd(client, {
        ...(plan.token ? { token: plan.token } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
      result.source = src;
      return migrateToSqlite(client, src, plan.preview.target, {
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
    });
  } catch (err) {
    return {
      ...result,
      failedAt: 'migrate',
      error: isCancelled(err) ? 'cancelled while etcd was read or written' : errorMessage(err),
    };
  }
  const v = result.migration.verify;
  if (!v.ok)
    return {
      ...result,
      failedAt: 'migrate',
      error: `the new state.db did not verify (${v.foundKeys}/${v.expectedKeys} keys, ${v.leasedFound}/${v.leasedExpected} leased, SHA-256 ${v.targetSha256 === v.sourceSha256 ? 'equal' : 'different'}): it is kept as ${result.migration.file} to inspect`,
    };

  opts.onPhase?.('repoint', `${plan.chosen.name} on SQLite, node ${plan.preview.node} Ready`);
  const open = sshOpener(cluster, plan.chosen, opts.ssh);
  const file = await sha256File(result.migration.file);
  result.stateDb = { sha256: file.sha256, bytes: file.bytes };
  const serverPlan = sqliteServerPlan({
    host: plan.chosen,
    facts: plan.facts,
    config: Buffer.from(plan.config.text),
    stateDb: {
      localPath: result.migration.file,
      sha256: file.sha256,
      bytes: file.bytes,
    },
    stamp: plan.stamp,
    readySeconds,
  });
  result.serverRun = await asHostRun(plan.chosen.name, hooks, {}, async () => {
    const t = await open(opts.signal);
    try {
      return await runHostPlan(t, serverPlan, { ...hooks, dryRun: false });
    } finally {
      t.close();
    }
  });
  if (result.serverRun.status !== 'failed' && result.serverRun.status !== 'cancelled')
    return { ...result, ok: true };

  // The way back for this server: never cancelled (a half-moved server must not stay down).
  const back = backOnEtcdPlan(plan.chosen, plan.facts, plan.sqlite.config, readySeconds);
  const backHooks: RunHooks = opts.onLine ? { onLine: opts.onLine } : {};
  result.rollback = await asHostRun(plan.chosen.name, backHooks, {}, async () => {
    const t = await open();
    try {
      return await runHostPlan(t, back, { ...backHooks, dryRun: false });
    } finally {
      t.close();
    }
  });
  return {
    ...result,
    failedAt: 'repoint',
    error: result.serverRun.error?.message ?? `${plan.chosen.name}: ${result.serverRun.status}`,
  };
}
