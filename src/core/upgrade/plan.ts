/**
 * An etcd upgrade as a plan, pure: from the versions the members run (endpoint status) to the
 * target, one hop per step of the path planner (etcdRelease/upgradePath.ts), each hop with the
 * flags its version renders (which names change) and where its binaries come from; or a refusal
 * with the reason, before anything is touched. And the plan in words (the dry run), once here.
 */
import { tuningEnv, tuningProblems, type EtcdTuning } from '../etcdRelease/flags';
import { planUpgradePath, type UpgradeStep } from '../etcdRelease/upgradePath';
import { compareVersions, formatVersion, parseEtcdVersion } from '../etcdRelease/version';
import type { Cluster } from '../inventory/types';
import { BIN_DIR } from '../etcd/memberHost';
import { rollingPlanLines, type RollingPlan } from '../rolling/restarts';

/** What a member answered to endpoint status. */
export interface MemberVersion {
  member: string;
  endpoint: string;
  /** The server's version (`3.4.23`), when it answered. */
  version?: string;
  problem?: string;
}

/** How the binaries of each hop reach the hosts (etcd.install, and what uploadPath holds). */
export type BinaryLayout =
  | { kind: 'download'; url: string }
  | { kind: 'installed' }
  | {
      kind: 'upload';
      path: string;
      /** Versions (`v3.4.45`) of the release tarballs in the uploadPath folder. */
      tarballs: string[];
      /** uploadPath is one file, or a folder with bare etcd and etcdctl: one version only. */
      single: boolean;
    };

/** A tuning key whose flag name differs between two versions. */
export interface FlagChange {
  key: string;
  from: string;
  to: string;
}

export interface UpgradeHop extends UpgradeStep {
  /** Where this hop's binaries come from, in words. */
  binaries: string;
  /** Flags whose names this hop changes. */
  flags: FlagChange[];
  /** extraArgs this version deprecates (still accepted). */
  warnings: string[];
}

export type UpgradePlan =
  | {
      ok: true;
      cluster: string;
      from: string;
      to: string;
      members: MemberVersion[];
      hops: UpgradeHop[];
      notes: string[];
    }
  | { ok: false; reason: string };

export const KEPT_BINARIES = [`${BIN_DIR}/etcd`, `${BIN_DIR}/etcdctl`] as const;

const flagOf = (env: string) => `--${env.slice(5).toLowerCase().replace(/_/g, '-')}`;

/** The tuning keys whose rendered flag names differ between `from` and `to`. */
export function flagChanges(tuning: EtcdTuning, from: string, to: string): FlagChange[] {
  const out: FlagChange[] = [];
  for (const key of Object.keys(tuning) as Array<keyof EtcdTuning>) {
    if (key === 'extraArgs' || key === 'profile' || tuning[key] === undefined) continue;
    const one = { [key]: tuning[key] } as EtcdTuning;
    const render = (v: string) =>
      tuningEnv(one, v)
        .map(([k, val]) => `${flagOf(k)}=${val}`)
        .join(' ');
    const a = render(from);
    const b = render(to);
    if (a !== b) out.push({ key, from: a, to: b });
  }
  return out;
}

function binariesOf(layout: BinaryLayout, version: string): string {
  switch (layout.kind) {
    case 'download':
      return `downloaded on each host from ${layout.url.replace(/\{version\}/g, version)} (checked against the release's SHA256SUMS)`;
    case 'installed':
      return 'the installed ones';
    case 'upload':
      return layout.tarballs.includes(version)
        ? `uploaded: etcd-${version}-linux-<arch>.tar.gz from ${layout.path}`
        : `uploaded from ${layout.path} (they must report ${version})`;
  }
}

/**
 * The upgrade of `cluster` to `to`, from what its members run. Refused: a member that does not
 * answer, a path the planner refuses (a downgrade, beyond the known releases, a known-bad
 * target), tuning a hop's version cannot render, binaries this tool did not install, and
 * uploaded binaries that cannot serve every hop.
 */
export function planUpgrade(
  cluster: Cluster,
  members: readonly MemberVersion[],
  to: string,
  layout: BinaryLayout,
): UpgradePlan {
  const refuse = (reason: string): UpgradePlan => ({ ok: false, reason });
  if (cluster.datastore !== 'external-etcd') {
    return refuse(
      `cluster ${cluster.name} runs K3s's embedded etcd, which K3s upgrades with itself: this upgrade is for an external etcd provisioned by k3s-etcd`,
    );
  }
  if (members.length === 0) return refuse(`cluster ${cluster.name} has no etcd host`);
  const silent = members.filter((m) => !m.version || !parseEtcdVersion(m.version));
  if (silent.length > 0) {
    return refuse(
      `every member must answer before an upgrade, and ${silent.map((m) => `${m.member} (${m.problem ?? `version ${JSON.stringify(m.version ?? '')}`})`).join(', ')} did not: bring it back (k3s-etcd status) and run the upgrade again`,
    );
  }
  const parsed = members.map((m) => ({ m, v: parseEtcdVersion(m.version!)! }));
  const lowest = parsed.reduce((a, b) => (compareVersions(b.v, a.v) < 0 ? b : a));
  const from = formatVersion(lowest.v);
  const notes: string[] = [];
  if (parsed.some((p) => compareVersions(p.v, lowest.v) !== 0)) {
    notes.push(
      `the members run different versions (${parsed.map((p) => `${p.m.member} ${formatVersion(p.v)}`).join(', ')}): the path starts from the lowest, ${from}`,
    );
  }
  const path = planUpgradePath(from, to);
  if (!path.ok) return refuse(path.reason);
  const target = formatVersion(parseEtcdVersion(to)!);
  if (layout.kind === 'installed') {
    return refuse(
      'etcd.install is "installed": k3s-etcd does not replace binaries it did not install. Upgrade them by hand, or set etcd.install to download or upload',
    );
  }
  if (layout.kind === 'upload' && path.steps.length > 0) {
    const missing = path.steps.map((s) => s.to).filter((v) => !layout.tarballs.includes(v));
    const singleOk = layout.single && path.steps.length === 1;
    if (missing.length > 0 && !singleOk) {
      return refuse(
        `the path has ${path.steps.length} hop(s) (${[from, ...path.steps.map((s) => s.to)].join(' → ')}) and etcd.install is upload: put the release tarball of every hop into the etcd.uploadPath folder ${layout.path} (missing: ${missing.map((v) => `etcd-${v}-linux-<arch>.tar.gz`).join(', ')}); a single etcd binary serves a one-hop upgrade only`,
      );
    }
  }
  const hops: UpgradeHop[] = [];
  let prev = from;
  for (const step of path.steps) {
    const problems = tuningProblems(cluster.etcd.tuning, step.to);
    const errors = problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) {
      return refuse(
        `the etcd tuning in k3s-etcd.yaml does not work on ${step.to}: ${errors.map((p) => `etcd.${p.key}${p.index !== undefined ? `[${p.index}]` : ''}: ${p.message}`).join('; ')}. Change it first (the upgrade path: ${[from, ...path.steps.map((s) => s.to)].join(' → ')})`,
      );
    }
    hops.push({
      ...step,
      binaries: binariesOf(layout, step.to),
      flags: flagChanges(cluster.etcd.tuning, prev, step.to),
      warnings: problems.map((p) => p.message),
    });
    prev = step.to;
  }
  return { ok: true, cluster: cluster.name, from, to: target, members: [...members], hops, notes };
}

/** The minor etcd's cluster version must reach after a hop to `version` (`3.5`). */
export function hopMinor(version: string): string {
  const v = parseEtcdVersion(version);
  return v ? `${v.major}.${v.minor}` : version;
}

/** The plan in words: the path, the snapshot, each hop's binaries, flags and rolling order. */
export function upgradeLines(
  plan: Extract<UpgradePlan, { ok: true }>,
  opts: { snapshotDir: string; rolling?: ReadonlyArray<RollingPlan | undefined> },
): string[] {
  if (plan.hops.length === 0) {
    return [
      `Cluster ${plan.cluster} already runs ${plan.to} (${plan.members.map((m) => `${m.member} ${m.version}`).join(', ')}): nothing to upgrade.`,
    ];
  }
  const lines = [
    `Upgrade etcd of cluster ${plan.cluster} from ${plan.from} to ${plan.to}: ${[plan.from, ...plan.hops.map((h) => h.to)].join(' → ')} (one minor at a time; members now: ${plan.members.map((m) => `${m.member} ${m.version}`).join(', ')})`,
    ...plan.notes.map((n) => `note: ${n}`),
    `1. a snapshot first, into ${opts.snapshotDir}/<UTC time>.db, checked against its record (SHA-256, bytes, revision) before anything changes`,
  ];
  plan.hops.forEach((h, i) => {
    lines.push(`${i + 2}. hop ${i + 1}/${plan.hops.length}: ${h.from} → ${h.to} (${h.reason})`);
    lines.push(`   binaries: ${h.binaries}`);
    if (h.flags.length === 0) lines.push(`   flags: the same names on ${h.to}`);
    for (const f of h.flags) lines.push(`   flags: etcd.${f.key}: ${f.from} → ${f.to}`);
    for (const w of h.warnings) lines.push(`   warning: ${w}`);
    const rolling = opts.rolling?.[i];
    const order = rolling ? rollingPlanLines(rolling) : [];
    if (order.length > 0) lines.push(...order.map((l) => `   ${l}`));
    else if (i > 0)
      lines.push('   rolling: member by member as in hop 1 (read again when the hop starts)');
    lines.push(
      `   then the cluster version must reach ${hopMinor(h.to)} before ${i + 1 < plan.hops.length ? 'the next hop' : 'the inventory is updated'}`,
    );
  });
  lines.push(
    `${plan.hops.length + 2}. each restarted member keeps its previous binaries as ${KEPT_BINARIES.map((b) => `${b}.previous`).join(' and ')} (root, 0755) for a one-step rollback`,
    `${plan.hops.length + 3}. etcd.version in k3s-etcd.yaml becomes ${plan.to} (only that value changes; comments are kept)`,
  );
  return lines;
}
