/**
 * etcd releases as data: the tuning's flag names per release (the names are etcd's, read at the
 * release tags: see src/core/etcdRelease/flags.ts), the version warnings, and the upgrade path.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  envName,
  extraArgsLine,
  tuningEnv,
  tuningProblems,
  type EtcdTuning,
} from '../../src/core/etcdRelease/flags';
import { planUpgradePath } from '../../src/core/etcdRelease/upgradePath';
import {
  DEFAULT_ETCD_VERSION,
  knownBadReasons,
  kubernetesFloorReason,
  parseEtcdVersion,
} from '../../src/core/etcdRelease/version';

const ALL: EtcdTuning = {
  quotaBackendBytes: 8589934592,
  autoCompactionMode: 'periodic',
  autoCompactionRetention: '1h',
  heartbeatInterval: 500,
  electionTimeout: 5000,
  snapshotCount: 10000,
  maxRequestBytes: 2097152,
  corruptCheck: true,
  compactHashCheck: true,
  cipherSuites: [
    'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  ],
  tlsMinVersion: 'TLS1.2',
};

const env = (t: EtcdTuning, v: string) => tuningEnv(t, v).map(([k, val]) => `${k}=${val}`);

const COMMON = [
  'ETCD_QUOTA_BACKEND_BYTES=8589934592',
  'ETCD_AUTO_COMPACTION_MODE=periodic',
  'ETCD_AUTO_COMPACTION_RETENTION=1h',
  'ETCD_HEARTBEAT_INTERVAL=500',
  'ETCD_ELECTION_TIMEOUT=5000',
  'ETCD_SNAPSHOT_COUNT=10000',
  'ETCD_MAX_REQUEST_BYTES=2097152',
  'ETCD_CIPHER_SUITES=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  'ETCD_TLS_MIN_VERSION=TLS1.2',
];

describe('etcd flags per release', () => {
  it('ETCD_<NAME> is the flag --<name> upper-cased, dashes to underscores (pkg/flags)', () => {
    assert.equal(envName('quota-backend-bytes'), 'ETCD_QUOTA_BACKEND_BYTES');
    assert.equal(
      envName('experimental-initial-corrupt-check'),
      'ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK',
    );
  });

  it('3.4 and 3.5: the corruption checks are --experimental-* flags', () => {
    const experimental = [
      'ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK=true',
      'ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED=true',
    ];
    assert.deepEqual(env(ALL, 'v3.5.33'), [...COMMON, ...experimental]);
    assert.deepEqual(env({ ...ALL, compactHashCheck: false }, 'v3.4.45'), [
      ...COMMON,
      'ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK=true',
    ]);
  });

  it('3.6 and 3.7: the corruption checks are feature gates (3.7 has no --experimental-*)', () => {
    const gates = ['ETCD_FEATURE_GATES=InitialCorruptCheck=true,CompactHashCheck=true'];
    assert.deepEqual(env(ALL, 'v3.6.14'), [...COMMON, ...gates]);
    assert.deepEqual(env(ALL, '3.7.1'), [...COMMON, ...gates]);
    assert.ok(!env(ALL, 'v3.7.0').some((l) => l.includes('EXPERIMENTAL')));
    assert.deepEqual(env({ corruptCheck: true }, 'v3.6.0'), [
      'ETCD_FEATURE_GATES=InitialCorruptCheck=true',
    ]);
  });

  it('what a version lacks is refused: tls-min-version before 3.4.25 / 3.5.8, the hash check before 3.5.5', () => {
    const t: EtcdTuning = { tlsMinVersion: 'TLS1.3', compactHashCheck: true };
    const keys = (v: string) => tuningProblems(t, v).map((p) => `${p.severity} ${p.key}`);
    assert.deepEqual(keys('v3.4.23'), ['error tlsMinVersion', 'error compactHashCheck']);
    assert.deepEqual(keys('v3.4.25'), ['error compactHashCheck']);
    assert.deepEqual(keys('v3.5.4'), ['error tlsMinVersion', 'error compactHashCheck']);
    assert.deepEqual(keys('v3.5.7'), ['error tlsMinVersion']);
    assert.deepEqual(keys('v3.5.8'), []);
    assert.deepEqual(keys('v3.6.0'), []);
    assert.match(tuningProblems(t, 'v3.4.23')[0]!.message, /came in 3\.4\.25 and 3\.5\.8/);
  });

  it('extraArgs: renamed and removed flags per release, with the name to use', () => {
    const msgs = (args: string[], v: string) =>
      tuningProblems({ extraArgs: args }, v).map((p) => `${p.severity}: ${p.message}`);
    const args = ['--experimental-compaction-batch-limit=500'];
    assert.deepEqual(msgs(args, 'v3.5.33'), []);
    assert.deepEqual(msgs(args, 'v3.6.14'), [
      'warning: --experimental-compaction-batch-limit is deprecated in etcd 3.6 and gone in 3.7: use --compaction-batch-limit',
    ]);
    assert.deepEqual(msgs(args, 'v3.7.1'), [
      'error: etcd v3.7.1 has no --experimental-* flags: use --compaction-batch-limit',
    ]);
    assert.deepEqual(msgs(['--experimental-stop-grpc-service-on-defrag=true'], 'v3.7.0'), [
      'error: etcd v3.7.0 has no --experimental-* flags: use --feature-gates=StopGRPCServiceOnDefrag=true',
    ]);
    assert.deepEqual(msgs(['--experimental-backend-bbolt-freelist-type=map'], 'v3.4.23'), []);
    assert.deepEqual(msgs(['--experimental-backend-bbolt-freelist-type=map'], 'v3.5.0'), [
      'error: --experimental-backend-bbolt-freelist-type is --backend-bbolt-freelist-type from etcd 3.5 on: use --backend-bbolt-freelist-type',
    ]);
    assert.deepEqual(msgs(['--enable-v2=true'], 'v3.5.33'), []);
    assert.deepEqual(msgs(['--enable-v2=true'], 'v3.6.14'), [
      'error: --enable-v2 does not exist in v3.6.14: etcd 3.6 removed the v2 API',
    ]);
    assert.deepEqual(
      msgs(['--feature-gates=StopGRPCServiceOnDefrag=true'], 'v3.6.14'),
      [],
      'feature gates alone are fine',
    );
    assert.match(
      tuningProblems(
        { corruptCheck: true, extraArgs: ['--feature-gates=StopGRPCServiceOnDefrag=true'] },
        'v3.6.14',
      )[0]!.message,
      /--feature-gates cannot be combined with etcd\.corruptCheck/,
    );
    assert.deepEqual(extraArgsLine({ extraArgs: ['--log-level=warn', '--enable-pprof'] }), [
      '--log-level=warn',
      '--enable-pprof',
    ]);
    assert.throws(() => extraArgsLine({ extraArgs: ['--x=$(reboot)'] }), /Nothing was run/);
  });
});

describe('etcd versions: default, known-bad, Kubernetes floors', () => {
  it('the default is a 3.6 at or above the 3.6 -> 3.7 floor', () => {
    const v = parseEtcdVersion(DEFAULT_ETCD_VERSION)!;
    assert.equal(v.minor, 6);
    assert.ok(v.patch >= 11);
    assert.deepEqual(knownBadReasons(v), []);
  });

  it('3.5.0-3.5.2 and 3.5.1-3.5.19 are known bad, with the reason', () => {
    const bad = (s: string) => knownBadReasons(parseEtcdVersion(s)!).length;
    assert.equal(bad('v3.5.0'), 1);
    assert.equal(bad('v3.5.2'), 2);
    assert.equal(bad('v3.5.19'), 1);
    assert.equal(bad('v3.5.20'), 0);
    assert.equal(bad('v3.4.23'), 0);
    assert.match(knownBadReasons(parseEtcdVersion('3.5.1')!)[0]!, /inconsistent data/);
  });

  it('Kubernetes 1.31+ wants 3.4.29 / 3.5.11; an older K3s does not', () => {
    const r = (s: string, k?: number) => kubernetesFloorReason(parseEtcdVersion(s)!, k);
    assert.match(r('v3.4.23')!, /v3\.4\.23 is below v3\.4\.29/);
    assert.equal(r('v3.4.29'), undefined);
    assert.match(r('v3.5.10')!, /below v3\.5\.11/);
    assert.equal(r('v3.5.11'), undefined);
    assert.equal(r('v3.6.0'), undefined);
    assert.equal(r('v3.4.23', 30), undefined);
    assert.match(r('v3.4.23', 31)!, /Kubernetes 1\.31/);
  });
});

describe('etcd upgrade path', () => {
  const path = (a: string, b: string) => {
    const p = planUpgradePath(a, b);
    return p.ok ? p.steps.map((s) => `${s.kind} ${s.from} -> ${s.to}`) : `refused: ${p.reason}`;
  };

  it("Debian's 3.4.23 to 3.7: each minor in turn, each left from its guide's floor", () => {
    assert.deepEqual(path('v3.4.23', 'v3.7.1'), [
      'patch v3.4.23 -> v3.4.45',
      'minor v3.4.45 -> v3.5.33',
      'minor v3.5.33 -> v3.6.14',
      'minor v3.6.14 -> v3.7.1',
    ]);
    const p = planUpgradePath('v3.4.23', 'v3.7.1');
    assert.ok(p.ok);
    assert.match(p.steps[0]!.reason, /most recent 3\.4 patch/);
  });

  it('3.5 -> 3.6 from 3.5.32 on, 3.6 -> 3.7 from 3.6.11 on', () => {
    assert.deepEqual(path('v3.5.17', 'v3.6.14'), [
      'patch v3.5.17 -> v3.5.33',
      'minor v3.5.33 -> v3.6.14',
    ]);
    assert.deepEqual(path('v3.5.32', 'v3.6.0'), ['minor v3.5.32 -> v3.6.0']);
    assert.deepEqual(path('v3.6.10', 'v3.7.0'), [
      'patch v3.6.10 -> v3.6.14',
      'minor v3.6.14 -> v3.7.0',
    ]);
    assert.deepEqual(path('v3.6.11', 'v3.7.1'), ['minor v3.6.11 -> v3.7.1']);
    assert.deepEqual(path('v3.6.2', 'v3.6.14'), ['patch v3.6.2 -> v3.6.14']);
    assert.deepEqual(path('v3.6.14', '3.6.14'), []);
  });

  it('refuses a downgrade, a bad target, and versions it does not know', () => {
    assert.match(String(path('v3.6.14', 'v3.5.33')), /^refused: v3\.5\.33 is older than v3\.6\.14/);
    assert.match(String(path('v3.4.23', 'v3.5.1')), /^refused: v3\.5\.1 is a bad target/);
    assert.match(String(path('v3.3.27', 'v3.4.45')), /^refused: v3\.3\.27 is older than 3\.4/);
    assert.match(String(path('v3.6.14', 'v3.8.0')), /beyond the etcd releases/);
    assert.match(String(path('latest', 'v3.6.14')), /"latest" is not an etcd version/);
  });
});
