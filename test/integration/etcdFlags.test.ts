/**
 * The tuning's flag names against a real etcd: Debian's 3.4.23 (the only etcd here) is started
 * with the ETCD_* lines k3s-etcd writes for 3.4 and must use every one of them, and a misspelt
 * extraArgs flag on its command line must stop it. The 3.5-3.7 names are checked by unit tests
 * against etcd's sources (test/unit/etcdRelease.test.ts); they cannot run here.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { extraArgsLine, tuningEnv, tuningProblems } from '../../src/core/etcdRelease/flags';
import type { EtcdTuning } from '../../src/core/etcdRelease/flags';
import { parsePrometheus, scalar } from '../../src/core/etcd/prometheus';
import { scrapeMetrics } from '../../src/core/etcd/scrape';
import { startEtcdCluster } from '../../scripts/harness/etcd';
import { testScope } from './harness/tlsCluster';

const { track } = testScope('k3s-etcd-flags-');
const VERSION = 'v3.4.23';

/** Every key 3.4.23 has (tlsMinVersion came in 3.4.25, the compaction hash check in 3.5.5). */
const TUNING: EtcdTuning = {
  quotaBackendBytes: 16 * 1024 * 1024,
  autoCompactionMode: 'periodic',
  autoCompactionRetention: '1h',
  heartbeatInterval: 200,
  electionTimeout: 2000,
  snapshotCount: 5000,
  maxRequestBytes: 2 * 1024 * 1024,
  corruptCheck: true,
  cipherSuites: [
    'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  ],
};

describe(`etcd ${VERSION} takes the tuning k3s-etcd writes for it`, () => {
  it('every ETCD_* line is recognised and used, and /metrics reports the quota', async () => {
    assert.deepEqual(tuningProblems(TUNING, VERSION), []);
    const env = Object.fromEntries(tuningEnv(TUNING, VERSION));
    assert.equal(Object.keys(env).length, 9);
    const etcd = await startEtcdCluster({ members: 1, env });
    track(etcd);
    const m = etcd.members[0]!;
    const page = parsePrometheus((await scrapeMetrics(`${m.clientUrl}/metrics`)).text);
    assert.equal(scalar(page, 'etcd_server_quota_backend_bytes'), 16 * 1024 * 1024);
    const log = await readFile(m.logFile, 'utf8');
    assert.doesNotMatch(log, /unrecognized environment variable/);
    for (const key of Object.keys(env)) {
      assert.match(log, new RegExp(`recognized and used environment variable ${key}=`), key);
    }
  });

  it('a misspelt extraArgs flag on the command line stops etcd (an ETCD_* variable would not)', async () => {
    const args = extraArgsLine({ extraArgs: ['--quota-backend-byte=1'] });
    await assert.rejects(
      startEtcdCluster({ members: 1, extraArgs: args, startTimeoutMs: 15_000 }),
      /exited early[\s\S]*flag provided but not defined: -quota-backend-byte/,
    );
    const etcd = await startEtcdCluster({ members: 1, env: { ETCD_QUOTA_BACKEND_BYTE: '1' } });
    track(etcd);
    const log = await readFile(etcd.members[0]!.logFile, 'utf8');
    assert.match(log, /unrecognized environment variable ETCD_QUOTA_BACKEND_BYTE=1/);
  });
});
