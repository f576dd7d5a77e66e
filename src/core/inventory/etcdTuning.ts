/**
 * etcd's tuning keys and its version in the inventory, beyond what the schema says: the model's
 * `etcd.tuning` built from the raw keys (profile applied, sizes in bytes), and the rules that
 * need more than one key or the version (etcd's own checks, made before anything is installed).
 * parse.ts places each problem at the line and column of the key it names.
 */
import { EDGE_PROFILE, tuningProblems, type EtcdTuning } from '../etcdRelease/flags';
import { leaveFloor } from '../etcdRelease/upgradePath';
import {
  DEFAULT_ETCD_VERSION,
  formatVersion,
  isKnownMinor,
  knownBadReasons,
  kubernetesFloorReason,
  kubernetesMinorOfK3s,
  parseEtcdVersion,
} from '../etcdRelease/version';
import type { Severity } from './types';

/**
 * The tuning keys as they stand in the file (after schema validation): the model's keys, with a
 * size or a retention still as written (`4GiB`, `1h` or a number).
 */
export type RawTuning = Omit<EtcdTuning, 'quotaBackendBytes' | 'autoCompactionRetention'> & {
  quotaBackendBytes?: number | string;
  autoCompactionRetention?: number | string;
};

/** What the checks need besides the tuning keys. */
export interface TuningContext {
  version?: string;
  /** The cluster has a host with the role k3s-server on this etcd. */
  k3sOnIt: boolean;
  k3sVersion?: string;
}

/** `(severity, path below etcd:, message)`. */
export type TuningReport = (
  severity: Severity,
  path: ReadonlyArray<string | number>,
  message: string,
) => void;

const UNITS: Record<string, number> = { KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 };

/** `4GiB` → 4294967296; a number stays as it is. */
export function quotaBytes(value: number | string): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+)(KiB|MiB|GiB)$/.exec(value);
  return m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
}

/** etcd's defaults (embed/config.go, every release 3.4 to 3.7). */
const ETCD_HEARTBEAT_MS = 100;
const ETCD_ELECTION_MS = 1000;
/** etcd warns at start above this quota (server/storage/quota.go MaxQuotaBytes, 8 GiB). */
const MAX_SUGGESTED_QUOTA = 8 * 2 ** 30;

export function buildTuning(raw: RawTuning): EtcdTuning {
  const edge = raw.profile === 'edge';
  const t: EtcdTuning = {
    ...(raw.profile ? { profile: raw.profile } : {}),
    ...(raw.quotaBackendBytes !== undefined
      ? { quotaBackendBytes: quotaBytes(raw.quotaBackendBytes) }
      : {}),
    ...(raw.autoCompactionMode ? { autoCompactionMode: raw.autoCompactionMode } : {}),
    ...(raw.autoCompactionRetention !== undefined
      ? { autoCompactionRetention: String(raw.autoCompactionRetention) }
      : {}),
  };
  const heartbeat = raw.heartbeatInterval ?? (edge ? EDGE_PROFILE.heartbeatInterval : undefined);
  const election = raw.electionTimeout ?? (edge ? EDGE_PROFILE.electionTimeout : undefined);
  if (heartbeat !== undefined) t.heartbeatInterval = heartbeat;
  if (election !== undefined) t.electionTimeout = election;
  if (raw.snapshotCount !== undefined) t.snapshotCount = raw.snapshotCount;
  if (raw.maxRequestBytes !== undefined) t.maxRequestBytes = raw.maxRequestBytes;
  if (raw.corruptCheck !== undefined) t.corruptCheck = raw.corruptCheck;
  if (raw.compactHashCheck !== undefined) t.compactHashCheck = raw.compactHashCheck;
  if (raw.cipherSuites) t.cipherSuites = [...raw.cipherSuites];
  if (raw.tlsMinVersion) t.tlsMinVersion = raw.tlsMinVersion;
  if (raw.extraArgs && raw.extraArgs.length > 0) t.extraArgs = [...raw.extraArgs];
  return t;
}

/**
 * How a quota is raised with this tool: the inventory key, applied by provision with a rolling
 * restart (as the migration says it), not an etcd flag the person has no place to set.
 */
export const RAISE_QUOTA =
  'raise etcd.quotaBackendBytes in k3s-etcd.yaml and apply it with provision';

/** The tuning's problems and the version's warnings of one cluster. */
export function checkTuning(raw: RawTuning, ctx: TuningContext, report: TuningReport): void {
  const version = ctx.version ?? DEFAULT_ETCD_VERSION;
  const t = buildTuning(raw);

  // etcd refuses to start when the election timeout is under 5 heartbeats (embed/config.go
  // Validate, every release): checked on the values etcd would use, profile and defaults in.
  const heartbeat = t.heartbeatInterval ?? ETCD_HEARTBEAT_MS;
  const election = t.electionTimeout ?? ETCD_ELECTION_MS;
  if (election < 5 * heartbeat) {
    const given = raw.electionTimeout !== undefined ? 'electionTimeout' : 'heartbeatInterval';
    report(
      'error',
      [given],
      `electionTimeout (${election} ms${raw.electionTimeout === undefined ? ', ' + (raw.profile ? 'the profile' : "etcd's default") : ''}) must be at least 5 times heartbeatInterval (${heartbeat} ms): etcd refuses to start otherwise; set electionTimeout to ${5 * heartbeat} or more`,
    );
  }

  if (t.quotaBackendBytes !== undefined && t.quotaBackendBytes > MAX_SUGGESTED_QUOTA) {
    report(
      'warning',
      ['quotaBackendBytes'],
      `a quota above 8 GiB is beyond etcd's guidance (it warns at start): a larger database makes snapshots, defragmentation and a new member's catch-up slow`,
    );
  }

  if (raw.autoCompactionMode === 'revision' && raw.autoCompactionRetention !== undefined) {
    if (!/^\d+$/.test(String(raw.autoCompactionRetention))) {
      report(
        'error',
        ['autoCompactionRetention'],
        `with autoCompactionMode revision the retention is a number of revisions, not ${JSON.stringify(raw.autoCompactionRetention)}`,
      );
    }
  }
  if (raw.autoCompactionMode !== undefined && raw.autoCompactionRetention === undefined) {
    report(
      'warning',
      ['autoCompactionMode'],
      "autoCompactionMode does nothing without autoCompactionRetention (etcd's default retention 0 turns auto compaction off)",
    );
  }

  // server/embed/config.go (v3.5.8+, v3.6, v3.7): "cipher suites cannot be configured when
  // only TLS1.3 is enabled".
  if (raw.tlsMinVersion === 'TLS1.3' && raw.cipherSuites) {
    report(
      'error',
      ['cipherSuites'],
      'cipherSuites cannot be set with tlsMinVersion TLS1.3 (TLS 1.3 suites are not configurable; etcd refuses to start): remove one of them',
    );
  }

  for (const p of tuningProblems(t, version)) {
    report(p.severity, p.index !== undefined ? [p.key, p.index] : [p.key], p.message);
  }

  checkVersion(version, ctx, report);
}

function checkVersion(version: string, ctx: TuningContext, report: TuningReport): void {
  const v = parseEtcdVersion(version);
  if (!v) return;
  for (const reason of knownBadReasons(v)) {
    // The known-bad ranges are 3.5 patches: the way out within 3.5 is the patch the 3.5 -> 3.6
    // upgrade starts from (upgradePath.ts), so the next upgrade needs no patch step first.
    report(
      'warning',
      ['version'],
      `${reason}: use ${DEFAULT_ETCD_VERSION}, or a 3.5 from ${leaveFloor(5)} (the 3.5 patch etcd's upgrade guide asks for before 3.6)`,
    );
  }
  if (ctx.k3sOnIt) {
    const reason = kubernetesFloorReason(v, kubernetesMinorOfK3s(ctx.k3sVersion));
    if (reason) report('warning', ['version'], `${reason}: K3s may fail on this etcd`);
  }
  if (!isKnownMinor(v)) {
    report(
      'warning',
      ['version'],
      `etcd ${formatVersion(v)} is not a release k3s-etcd knows (3.4 to 3.7): its tuning flags are written as for the nearest of those`,
    );
  }
}

/**
 * The tuning as `key value` words, in the inventory's spelling (for `inventory show` and
 * tooltips); empty when nothing is set.
 */
export function tuningSummary(t: EtcdTuning): string[] {
  const out: string[] = [];
  const add = (key: keyof EtcdTuning, value: string | undefined) => {
    if (value !== undefined) out.push(`${key} ${value}`);
  };
  add('profile', t.profile);
  add(
    'quotaBackendBytes',
    t.quotaBackendBytes === undefined
      ? undefined
      : `${t.quotaBackendBytes}${t.quotaBackendBytes % 2 ** 20 === 0 ? ` (${t.quotaBackendBytes / 2 ** 20} MiB)` : ''}`,
  );
  add('autoCompactionMode', t.autoCompactionMode);
  add('autoCompactionRetention', t.autoCompactionRetention);
  add(
    'heartbeatInterval',
    t.heartbeatInterval === undefined ? undefined : `${t.heartbeatInterval} ms`,
  );
  add('electionTimeout', t.electionTimeout === undefined ? undefined : `${t.electionTimeout} ms`);
  add('snapshotCount', t.snapshotCount?.toString());
  add('maxRequestBytes', t.maxRequestBytes?.toString());
  add('corruptCheck', t.corruptCheck?.toString());
  add('compactHashCheck', t.compactHashCheck?.toString());
  add('cipherSuites', t.cipherSuites?.join(','));
  add('tlsMinVersion', t.tlsMinVersion);
  add('extraArgs', t.extraArgs?.join(' '));
  return out;
}
