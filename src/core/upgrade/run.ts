/**
 * Upgrading the etcd of a running cluster, composed of the snapshot, restore (its snapshot
 * check) and provision operations: the version each member runs is read (endpoint status), the
 * path planned (plan.ts; refused before anything is touched), a fresh snapshot saved into the
 * workspace and checked against its record, then per hop the members provisioned with that
 * hop's version (its binaries, its flag names) through the rolling engine, one member at a
 * time, each keeping its previous binaries as `.previous`; the cluster version must reach the
 * hop's minor before the next hop. After the last one, etcd.version in the inventory follows.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { K3sEtcdError, errorMessage } from '../errors';
import { clusterSnapshot } from '../etcd/checks';
import { connectionFor } from '../etcd/connection';
import { scrapeMetrics } from '../etcd/scrape';
import type { SnapshotInfo } from '../etcd/snapshotFile';
import { parseEtcdVersion } from '../etcdRelease/version';
import { BACKUPS_DIR } from '../files/workspace';
import { setEtcdVersion } from '../inventory/edit';
import { clientUrl, etcdHosts } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import type { HostRun, RunHooks } from '../plan/runner';
import { provisionEtcd } from '../provision/provision';
import { verifySnapshot } from '../restore/plan';
import type { RollingPlan } from '../rolling/restarts';
import { saveSnapshot } from '../snapshot/snapshot';
import type { SshContext } from '../ssh/hostSession';
import {
  KEPT_BINARIES,
  hopMinor,
  planUpgrade,
  type BinaryLayout,
  type MemberVersion,
  type UpgradeHop,
  type UpgradePlan,
} from './plan';

export interface UpgradeOptions extends RunHooks {
  to: string;
  dryRun: boolean;
  ssh: SshContext;
  /** The folder of k3s-etcd.yaml: snapshots go to its backups/<cluster>/. */
  workspaceDir: string;
  /** k3s-etcd.yaml, whose etcd.version follows a finished upgrade. */
  inventoryFile: string;
  /** How long the cluster version may take to reach a hop's minor (default 60 s). */
  clusterVersionMs?: number;
}

export interface HopResult {
  hop: UpgradeHop;
  rolling?: RollingPlan;
  runs: HostRun[];
  healthy?: boolean;
  /** etcd's cluster version after the hop (`3.5.0`). */
  clusterVersion?: string;
}

export interface UpgradeResult {
  plan: Extract<UpgradePlan, { ok: true }>;
  snapshot?: SnapshotInfo;
  hops: HopResult[];
  /** Every hop done and the inventory updated (a dry run: the plan stands). */
  ok: boolean;
  /** Why it stopped, with where things stand. */
  message?: string;
  /** etcd.version before it was set to the target (after a finished upgrade). */
  inventoryVersionBefore?: string;
  /** Lines that are true but not failures (a server version the status still reports). */
  notes: string[];
}

/** Each member's version from endpoint status over its client URL. */
export async function runningVersions(
  cluster: Cluster,
  signal?: AbortSignal,
): Promise<MemberVersion[]> {
  const conn = await connectionFor(cluster);
  const hosts = etcdHosts(cluster);
  const endpoints = hosts.map((h) => clientUrl(cluster, h));
  const snap = await clusterSnapshot(endpoints, {
    tls: conn.tls,
    timeoutMs: 5000,
    ...(signal ? { signal } : {}),
  });
  return hosts.map((h, i) => {
    const s = snap.status[i];
    return {
      member: h.memberName,
      endpoint: endpoints[i] ?? '',
      ...(s && !s.problem && s.version ? { version: s.version } : {}),
      ...(s?.problem ? { problem: s.problem.summary } : {}),
    };
  });
}

const TARBALL = /^etcd-(v\d+\.\d+\.\d+)-linux-[a-z0-9]+\.tar\.gz$/;

/** What etcd.install and the uploadPath give each hop. */
export async function binaryLayout(cluster: Cluster): Promise<BinaryLayout> {
  const e = cluster.etcd;
  if (e.install === 'installed') return { kind: 'installed' };
  if (e.install === 'download') return { kind: 'download', url: e.downloadUrl };
  const path = e.uploadPath ?? '';
  const st = path ? await stat(path).catch(() => undefined) : undefined;
  if (!st) return { kind: 'upload', path, tarballs: [], single: false };
  if (st.isFile()) {
    const m = TARBALL.exec(basename(path));
    return { kind: 'upload', path, tarballs: m ? [m[1]!] : [], single: !m };
  }
  const names = await readdir(path);
  const tarballs = [
    ...new Set(names.map((n) => TARBALL.exec(n)?.[1]).filter((v): v is string => !!v)),
  ];
  return {
    kind: 'upload',
    path,
    tarballs,
    single: names.includes('etcd') && names.includes('etcdctl'),
  };
}

/** The cluster as a hop provisions it: etcd.version is the hop's. */
const atVersion = (cluster: Cluster, version: string): Cluster => ({
  ...cluster,
  etcd: { ...cluster.etcd, version },
});

/** etcd's cluster version (`/version`'s etcdcluster, `3.4.0`) as the members report it. */
async function clusterVersion(cluster: Cluster, signal?: AbortSignal): Promise<string[]> {
  const conn = await connectionFor(cluster);
  const seen: string[] = [];
  for (const ep of conn.endpoints) {
    try {
      const r = await scrapeMetrics(`${ep.replace(/\/+$/, '')}/version`, {
        tls: conn.tls,
        timeoutMs: 3000,
        ...(signal ? { signal } : {}),
      });
      const v = (JSON.parse(r.text) as { etcdcluster?: unknown }).etcdcluster;
      if (typeof v === 'string') seen.push(v);
    } catch {
      // a member that does not answer now says nothing about the cluster version
    }
  }
  return seen;
}

/** Waits until every answering member reports a cluster version at `minor` or later. */
async function waitClusterVersion(
  cluster: Cluster,
  minor: string,
  ms: number,
  signal?: AbortSignal,
): Promise<{ ok: boolean; version: string }> {
  const [maj, min] = minor.split('.').map(Number) as [number, number];
  const until = Date.now() + ms;
  for (;;) {
    const seen = await clusterVersion(cluster, signal);
    const reached = (v: string) => {
      const p = /^(\d+)\.(\d+)/.exec(v);
      return !!p && (Number(p[1]) > maj || (Number(p[1]) === maj && Number(p[2]) >= min));
    };
    if (seen.length > 0 && seen.every(reached)) return { ok: true, version: seen[0]! };
    if (Date.now() > until || signal?.aborted)
      return { ok: false, version: seen.join(', ') || 'no answer' };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Upgrades (or, with dryRun, plans and previews) the etcd of `cluster` to `opts.to`. Throws
 * `upgrade-refused` before anything is touched; after that, stops at the first hop that fails
 * and says where things stand (`ok: false`, `message`).
 */
export async function upgradeEtcd(cluster: Cluster, opts: UpgradeOptions): Promise<UpgradeResult> {
  if (!parseEtcdVersion(opts.to)) {
    throw new K3sEtcdError(
      'usage',
      `${JSON.stringify(opts.to)} is not an etcd version: give --to v3.x.y`,
    );
  }
  const members =
    cluster.datastore === 'external-etcd' ? await runningVersions(cluster, opts.signal) : [];
  const planned = planUpgrade(cluster, members, opts.to, await binaryLayout(cluster));
  if (!planned.ok) {
    throw new K3sEtcdError(
      'upgrade-refused',
      `Upgrade of ${cluster.name} to ${opts.to} refused: ${planned.reason}. Nothing was changed.`,
    );
  }
  const result: UpgradeResult = { plan: planned, hops: [], ok: true, notes: [] };
  if (planned.hops.length === 0) return result;
  const say = (line: string) => opts.onLine?.(cluster.name, line);
  const hooks = {
    ssh: opts.ssh,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };

  if (opts.dryRun) {
    for (const hop of planned.hops) {
      const r = await provisionEtcd(atVersion(cluster, hop.to), { ...hooks, dryRun: true });
      result.hops.push({ hop, runs: r.runs, ...(r.rolling ? { rolling: r.rolling } : {}) });
    }
    return result;
  }

  say(`snapshot of ${cluster.name} before the upgrade`);
  const saved = await saveSnapshot(cluster, {
    workspaceDir: opts.workspaceDir,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  result.snapshot = await verifySnapshot(cluster, saved.file);
  say(
    `snapshot ${saved.file}: ${saved.bytes} bytes, revision ${saved.revision}, sha256 ${saved.sha256} (checked against its record)`,
  );
  const stop = (i: number, why: string): UpgradeResult => {
    const hop = planned.hops[i]!;
    result.ok = false;
    result.message = `The upgrade stopped at hop ${i + 1}/${planned.hops.length} (${hop.from} → ${hop.to}): ${why}. etcd.version in k3s-etcd.yaml is unchanged; the snapshot taken before is ${saved.file}.`;
    return result;
  };
  for (const [i, hop] of planned.hops.entries()) {
    say(`hop ${i + 1}/${planned.hops.length}: ${hop.from} → ${hop.to}`);
    let r;
    try {
      r = await provisionEtcd(atVersion(cluster, hop.to), {
        ...hooks,
        dryRun: false,
        keepPrevious: KEPT_BINARIES,
      });
    } catch (err) {
      return stop(i, errorMessage(err));
    }
    const h: HopResult = {
      hop,
      runs: r.runs,
      ...(r.rolling ? { rolling: r.rolling } : {}),
      ...(r.healthy !== undefined ? { healthy: r.healthy } : {}),
    };
    result.hops.push(h);
    const failed = r.runs.filter((x) => x.status === 'failed' || x.status === 'cancelled');
    if (failed.length > 0)
      return stop(i, failed.map((x) => x.error?.message ?? `${x.host} failed`).join('; '));
    if (r.healthy === false) return stop(i, `the cluster is not healthy: ${r.healthSummary}`);
    const cv = await waitClusterVersion(
      cluster,
      hopMinor(hop.to),
      opts.clusterVersionMs ?? 60_000,
      opts.signal,
    );
    h.clusterVersion = cv.version;
    if (!cv.ok)
      return stop(
        i,
        `the cluster version is ${cv.version}, not ${hopMinor(hop.to)} yet: check \`k3s-etcd status\` and run the upgrade again`,
      );
    say(`cluster version ${cv.version} after hop ${i + 1}`);
  }
  // What the servers report now: a member whose status still shows an older version is named.
  for (const m of await runningVersions(cluster, opts.signal).catch(() => []))
    if (m.version && `v${m.version.replace(/^v/, '')}` !== planned.to)
      result.notes.push(
        `${m.member}'s endpoint status reports etcd ${m.version}, though its binary reports ${planned.to}`,
      );
  const before = await setEtcdVersion(opts.inventoryFile, cluster.name, planned.to);
  if (before !== undefined) result.inventoryVersionBefore = before;
  say(`etcd.version of ${cluster.name} in ${basename(opts.inventoryFile)} is now ${planned.to}`);
  return result;
}

/** Where the upgrade's snapshot goes, relative to the workspace. */
export const snapshotFolder = (cluster: Cluster) => join(BACKUPS_DIR, cluster.name);
