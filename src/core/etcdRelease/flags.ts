/**
 * etcd's tuning from the inventory as the flags of one etcd version: the ETCD_* lines of the env
 * file and the extra command-line arguments of the unit. Pure: no I/O.
 *
 * Flag names are the real ones of each release, read from etcd-io/etcd at the release tags:
 * 3.4 from etcdmain/config.go and etcdmain/help.go (v3.4.23, v3.4.45); 3.5 from
 * server/etcdmain/config.go and help.go (v3.5.0, v3.5.33); 3.6 from server/embed/config.go,
 * server/etcdmain/config.go and server/features/etcd_features.go (v3.6.0, v3.6.14); 3.7 from the
 * same files at v3.7.0 and v3.7.1. Each ETCD_<NAME> variable is the flag --<name> (etcd's
 * pkg/flags SetFlagsFromEnv, every release).
 */
import { K3sEtcdError } from '../errors';
import { atLeastPatch, formatVersion, parseEtcdVersion, type EtcdVersion } from './version';

/** The tuning keys under `etcd:` in the inventory (a contract: spelled exactly like this). */
export interface EtcdTuning {
  /** `edge`: heartbeat 500 ms, election 5000 ms (K3s's values for slow links and SD cards). */
  profile?: 'edge';
  quotaBackendBytes?: number;
  autoCompactionMode?: 'periodic' | 'revision';
  /** periodic: a duration (`1h`, `30m`) or whole hours; revision: a revision count. */
  autoCompactionRetention?: string;
  /** Milliseconds. */
  heartbeatInterval?: number;
  /** Milliseconds. */
  electionTimeout?: number;
  snapshotCount?: number;
  maxRequestBytes?: number;
  /** Check the data for corruption before serving (initial corruption check). */
  corruptCheck?: boolean;
  /** The leader compares followers' hashes after each compaction (3.5.5+). */
  compactHashCheck?: boolean;
  cipherSuites?: string[];
  tlsMinVersion?: 'TLS1.2' | 'TLS1.3';
  /** `--flag=value` (or `--flag`) for anything else; passed on etcd's command line. */
  extraArgs?: string[];
}

/** K3s's embedded etcd on slow links and SD cards: heartbeat 500 ms, election timeout 5 s. */
export const EDGE_PROFILE = { heartbeatInterval: 500, electionTimeout: 5000 } as const;

/** `quota-backend-bytes` → `ETCD_QUOTA_BACKEND_BYTES` (pkg/flags FlagToEnv). */
export function envName(flag: string): string {
  return `ETCD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Flags this tool sets itself (member name, data dir, URLs, TLS files, the initial cluster) or
 * that would take the member out of its hands: refused in extraArgs.
 */
const OWNED: Readonly<Record<string, string>> = Object.fromEntries(
  [
    ['name', 'the member name (hosts[].memberName)'],
    ['data-dir', 'etcd.dataDir'],
    ['wal-dir', 'the data dir (etcd.dataDir): restores and member removal move it as one'],
    ['listen-client-urls', 'the host address and etcd.clientPort'],
    ['listen-client-http-urls', 'the host address and etcd.clientPort'],
    ['advertise-client-urls', 'the host address and etcd.clientPort'],
    ['listen-peer-urls', 'the host address and etcd.peerPort'],
    ['initial-advertise-peer-urls', 'the host address and etcd.peerPort'],
    ['listen-metrics-urls', 'etcd.metricsPort'],
    ['initial-cluster', 'the etcd hosts of the cluster'],
    ['initial-cluster-state', 'provisioning (new or existing)'],
    ['initial-cluster-token', 'etcd.initialClusterToken'],
    ['discovery', 'the etcd hosts of the cluster'],
    ['discovery-srv', 'the etcd hosts of the cluster'],
    ['force-new-cluster', 'quorum-loss recovery, which sets it once'],
    ['config-file', 'the env file (a config file makes etcd ignore every other flag)'],
    ['client-cert-auth', 'mutual TLS, always on'],
    ['peer-client-cert-auth', 'mutual TLS, always on'],
    ['auto-tls', 'the certificates of pki/ (mutual TLS with the cluster CA)'],
    ['peer-auto-tls', 'the certificates of pki/ (mutual TLS with the cluster CA)'],
    ...[
      'trusted-ca-file',
      'cert-file',
      'key-file',
      'client-cert-file',
      'client-key-file',
      'peer-trusted-ca-file',
      'peer-cert-file',
      'peer-key-file',
      'peer-client-cert-file',
      'peer-client-key-file',
    ].map((f) => [f, 'the certificates of pki/ (certs generate and provision install them)']),
  ].map(([flag, owner]) => [flag!, owner!]),
);

/** Flags a tuning key renders: in extraArgs they are refused with the key to use instead. */
const TUNING_FLAGS: Readonly<Record<string, keyof EtcdTuning>> = {
  'quota-backend-bytes': 'quotaBackendBytes',
  'auto-compaction-mode': 'autoCompactionMode',
  'auto-compaction-retention': 'autoCompactionRetention',
  'heartbeat-interval': 'heartbeatInterval',
  'election-timeout': 'electionTimeout',
  'snapshot-count': 'snapshotCount',
  'max-request-bytes': 'maxRequestBytes',
  'experimental-initial-corrupt-check': 'corruptCheck',
  'experimental-compact-hash-check-enabled': 'compactHashCheck',
  'cipher-suites': 'cipherSuites',
  'tls-min-version': 'tlsMinVersion',
};

/**
 * 3.5 renamed `--experimental-backend-bbolt-freelist-type` to `--backend-bbolt-freelist-type`
 * (v3.5.0 server/etcdmain/config.go). 3.6 gave the non-boolean `--experimental-*` flags
 * unprefixed names (v3.6.0 server/embed/config.go experimentalFlagMigrationMap, plus
 * warning-unary-request-duration) and deprecated the old; 3.7 removed them (v3.7.0).
 */
const RENAMED: ReadonlyArray<{ from: string; to: string; minor: number }> = [
  { from: 'experimental-backend-bbolt-freelist-type', to: 'backend-bbolt-freelist-type', minor: 5 },
  ...[
    'compact-hash-check-time',
    'corrupt-check-time',
    'compaction-batch-limit',
    'watch-progress-notify-interval',
    'warning-apply-duration',
    'bootstrap-defrag-threshold-megabytes',
    'memory-mlock',
    'snapshot-catchup-entries',
    'compaction-sleep-interval',
    'downgrade-check-time',
    'peer-skip-client-san-verification',
    'enable-distributed-tracing',
    'distributed-tracing-address',
    'distributed-tracing-service-name',
    'distributed-tracing-instance-id',
    'distributed-tracing-sampling-rate',
    'warning-unary-request-duration',
  ].map((to) => ({ from: `experimental-${to}`, to, minor: 6 })),
];

/**
 * 3.6 turned the boolean `--experimental-*` flags into feature gates
 * (`--feature-gates=Name=true`; v3.6.0 server/features/etcd_features.go
 * ExperimentalFlagToFeatureMap); 3.7 removed the flags.
 */
const GATES: Readonly<Record<string, string>> = {
  'experimental-stop-grpc-service-on-defrag': 'StopGRPCServiceOnDefrag',
  'experimental-initial-corrupt-check': 'InitialCorruptCheck',
  'experimental-compact-hash-check-enabled': 'CompactHashCheck',
  'experimental-txn-mode-write-with-shared-buffer': 'TxnModeWriteWithSharedBuffer',
  'experimental-enable-lease-checkpoint': 'LeaseCheckpoint',
  'experimental-enable-lease-checkpoint-persist': 'LeaseCheckpointPersist',
};

/** Flags a later minor removed without a successor (the v2 API: upgrade_3_6.md, v3.6.0). */
const REMOVED: ReadonlyArray<{ flag: string; minor: number; why: string }> = [
  { flag: 'enable-v2', minor: 6, why: 'etcd 3.6 removed the v2 API' },
  { flag: 'experimental-enable-v2v3', minor: 6, why: 'etcd 3.6 removed the v2 API' },
];

/**
 * The inventory's key for a flag a running etcd was given, under any release's name (3.4's
 * `--experimental-initial-corrupt-check` and 3.6's gate both mean corruptCheck); undefined for a
 * flag no key renders.
 */
export function tuningKeyOfFlag(flag: string): keyof EtcdTuning | undefined {
  return Object.hasOwn(TUNING_FLAGS, flag) ? TUNING_FLAGS[flag] : undefined;
}

/** The key a 3.6+ feature gate stands for (`InitialCorruptCheck` → corruptCheck), if any. */
export function tuningKeyOfGate(gate: string): keyof EtcdTuning | undefined {
  const flag = Object.keys(GATES).find((f) => GATES[f] === gate);
  return flag ? tuningKeyOfFlag(flag) : undefined;
}

/** A flag this tool sets itself (member name, data dir, URLs, TLS files, the initial cluster). */
export function isOwnedFlag(flag: string): boolean {
  return Object.hasOwn(OWNED, flag);
}

/**
 * A flag under its newest name (`experimental-compaction-batch-limit` → `compaction-batch-limit`,
 * 3.6's rename), so the same setting read from two releases compares equal.
 */
export function newestFlagName(flag: string): string {
  return RENAMED.find((r) => r.from === flag)?.to ?? flag;
}

/** One extraArgs entry: `--name` or `--name=value`. */
export interface ExtraArg {
  flag: string;
  value?: string;
}

/** What systemd's ExecStart takes literally: no space, quote, `$`, `%`, `;` or backslash. */
const ARG_VALUE = /^[A-Za-z0-9_@+=:,./[\]-]*$/;

/** Parses one extraArgs entry, or says why it cannot be one. */
export function parseExtraArg(text: string): ExtraArg | { error: string } {
  const m = /^--([a-z0-9][a-z0-9-]*)(?:=(.*))?$/s.exec(text);
  if (!m) {
    return {
      error: `${JSON.stringify(text)} is not --flag=value: write each etcd flag as --name=value (lower-case name, two dashes)`,
    };
  }
  const flag = m[1]!;
  const value = m[2];
  if (value !== undefined && !ARG_VALUE.test(value)) {
    return {
      error: `the value of --${flag} may hold letters, digits and _ @ + = : , . / [ ] - only (no spaces, quotes, $, % or ;): systemd would read anything else on the command line`,
    };
  }
  return value === undefined ? { flag } : { flag, value };
}

export interface FlagProblem {
  severity: 'error' | 'warning';
  /** The tuning key the problem is about. */
  key: keyof EtcdTuning;
  /** With key extraArgs: the entry's index. */
  index?: number;
  message: string;
}

/** Why extraArgs[i] is refused or questionable for this version (or for any), if it is. */
function extraArgProblems(tuning: EtcdTuning, v: EtcdVersion | undefined): FlagProblem[] {
  const out: FlagProblem[] = [];
  const seen = new Map<string, number>();
  (tuning.extraArgs ?? []).forEach((text, index): void => {
    const p = (severity: FlagProblem['severity'], message: string): void => {
      out.push({ severity, key: 'extraArgs', index, message });
    };
    const arg = parseExtraArg(text);
    if ('error' in arg) return p('error', arg.error);
    const { flag } = arg;
    const first = seen.get(flag);
    if (first !== undefined)
      return p('error', `--${flag} is given twice (also extraArgs[${first}])`);
    seen.set(flag, index);
    const owner = OWNED[flag];
    if (owner)
      return p('error', `--${flag} is set by k3s-etcd from ${owner}: remove it from extraArgs`);
    const key = TUNING_FLAGS[flag];
    if (key) return p('error', `--${flag} has its own key: set etcd.${key} instead of extraArgs`);
    if (flag === 'feature-gates' && (tuning.corruptCheck || tuning.compactHashCheck)) {
      return p(
        'error',
        '--feature-gates cannot be combined with etcd.corruptCheck or etcd.compactHashCheck (which set the gates from 3.6 on): put those gates in this one --feature-gates',
      );
    }
    if (!v || v.major !== 3) return;
    const removed = REMOVED.find((r) => r.flag === flag && v.minor >= r.minor);
    if (removed)
      return p('error', `--${flag} does not exist in ${formatVersion(v)}: ${removed.why}`);
    const renamed = RENAMED.find((r) => r.from === flag && v.minor >= r.minor);
    const gate = GATES[flag];
    if (flag.startsWith('experimental-') && v.minor >= 7) {
      const instead = renamed
        ? `--${renamed.to}`
        : gate
          ? `--feature-gates=${gate}=true`
          : 'its successor (see etcd --help)';
      return p('error', `etcd ${formatVersion(v)} has no --experimental-* flags: use ${instead}`);
    }
    if (renamed) {
      return p(
        renamed.minor === 5 ? 'error' : 'warning',
        renamed.minor === 5
          ? `--${flag} is --${renamed.to} from etcd 3.5 on: use --${renamed.to}`
          : `--${flag} is deprecated in etcd 3.6 and gone in 3.7: use --${renamed.to}`,
      );
    }
    if (gate && v.minor === 6) {
      return p(
        'warning',
        `--${flag} is deprecated in etcd 3.6 and gone in 3.7: use --feature-gates=${gate}=true`,
      );
    }
    if (flag === 'unsafe-no-fsync') {
      return p('warning', '--unsafe-no-fsync loses committed data when a host loses power');
    }
  });
  return out;
}

/** tls-min-version exists from 3.4.25 and 3.5.8 on (etcdmain/config.go at those tags). */
function hasTlsMinVersion(v: EtcdVersion): boolean {
  return v.major === 3 && (v.minor >= 6 || atLeastPatch(v, 5, 8) || atLeastPatch(v, 4, 25));
}

/** experimental-compact-hash-check-enabled exists from 3.5.5 on (server/etcdmain/config.go). */
function hasCompactHashCheck(v: EtcdVersion): boolean {
  return v.major === 3 && (v.minor >= 6 || atLeastPatch(v, 5, 5));
}

/**
 * What the tuning asks that this etcd version cannot do, and extraArgs refused for any version.
 * An undefined version (not parseable) checks only what holds for every version.
 */
export function tuningProblems(tuning: EtcdTuning, version: string): FlagProblem[] {
  const v = parseEtcdVersion(version);
  const out = extraArgProblems(tuning, v);
  if (!v) return out;
  if (tuning.tlsMinVersion && !hasTlsMinVersion(v)) {
    out.push({
      severity: 'error',
      key: 'tlsMinVersion',
      message: `etcd ${formatVersion(v)} has no --tls-min-version (it came in 3.4.25 and 3.5.8): raise etcd.version or remove tlsMinVersion`,
    });
  }
  if (tuning.compactHashCheck && !hasCompactHashCheck(v)) {
    out.push({
      severity: 'error',
      key: 'compactHashCheck',
      message: `etcd ${formatVersion(v)} has no compaction hash check (it came in 3.5.5): raise etcd.version or remove compactHashCheck`,
    });
  }
  return out;
}

/**
 * The env file's ETCD_* lines for the tuning on this version, in a fixed order. The tuning must
 * have passed `tuningProblems` (the inventory refuses it otherwise); a version this tool does not
 * know (below 3.4 or above 3.7) gets the names of the nearest known minor.
 */
export function tuningEnv(tuning: EtcdTuning, version: string): Array<[string, string]> {
  const v = parseEtcdVersion(version);
  const minor = v ? Math.min(Math.max(v.minor, 4), 7) : 6;
  const out: Array<[string, string]> = [];
  const put = (flag: string, value: string | number | undefined) => {
    if (value !== undefined) out.push([envName(flag), String(value)]);
  };
  // The same name in every release 3.4.0 to 3.7.1 (help.go at each tag).
  put('quota-backend-bytes', tuning.quotaBackendBytes);
  put('auto-compaction-mode', tuning.autoCompactionMode);
  put('auto-compaction-retention', tuning.autoCompactionRetention);
  put('heartbeat-interval', tuning.heartbeatInterval);
  put('election-timeout', tuning.electionTimeout);
  put('snapshot-count', tuning.snapshotCount);
  put('max-request-bytes', tuning.maxRequestBytes);
  put('cipher-suites', tuning.cipherSuites?.join(','));
  put('tls-min-version', tuning.tlsMinVersion);
  if (minor <= 5) {
    // 3.4 and 3.5: --experimental-initial-corrupt-check (3.4.0+), and
    // --experimental-compact-hash-check-enabled (3.5.5+).
    if (tuning.corruptCheck) put('experimental-initial-corrupt-check', 'true');
    if (tuning.compactHashCheck) put('experimental-compact-hash-check-enabled', 'true');
  } else {
    // 3.6 deprecates both for --feature-gates (InitialCorruptCheck, CompactHashCheck); 3.7
    // has only the gates (server/features/etcd_features.go, v3.6.0 and v3.7.0).
    const gates = [
      ...(tuning.corruptCheck ? ['InitialCorruptCheck=true'] : []),
      ...(tuning.compactHashCheck ? ['CompactHashCheck=true'] : []),
    ];
    if (gates.length > 0) put('feature-gates', gates.join(','));
  }
  return out;
}

/**
 * extraArgs as etcd's command-line arguments (the unit's ExecStart), not ETCD_* variables: etcd
 * exits on an unknown command-line flag ("flag provided but not defined"), so a misspelt flag
 * stops the first member of a rolling change, while an unknown ETCD_* variable only logs
 * "unrecognized environment variable" and etcd runs without it (pkg/flags verifyEnv). Entries
 * must have passed `tuningProblems`; any other is refused here too.
 */
export function extraArgsLine(tuning: EtcdTuning): string[] {
  return (tuning.extraArgs ?? []).map((text) => {
    const arg = parseExtraArg(text);
    if ('error' in arg) {
      throw new K3sEtcdError('provision-refused', `etcd.extraArgs: ${arg.error}. Nothing was run.`);
    }
    return arg.value === undefined ? `--${arg.flag}` : `--${arg.flag}=${arg.value}`;
  });
}
