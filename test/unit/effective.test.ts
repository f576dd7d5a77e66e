/**
 * etcd's settings in effect as the health panel shows them: each member's quota from the
 * metrics the editor scrapes, beside the inventory's tuning, and the drift line `status` prints.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quotasFromMetrics, settingsInEffect } from '../../src/core/etcd/effective';
import type { ClusterMetrics, MemberMetrics } from '../../src/shared/metricsTypes';
import { cluster, host } from '../fixtures/inventory';

const MiB = 2 ** 20;
const url = (n: number) => `https://127.0.1.2${n}:2379`;
const edge = (tuning: Partial<ReturnType<typeof cluster>['etcd']['tuning']> = {}) => {
  const c = cluster(
    '/tmp/pki',
    [1, 2, 3].map((n) => host(`m-${n}`, `127.0.1.2${n}`)),
  );
  c.etcd.tuning = { ...c.etcd.tuning, ...tuning };
  return c;
};

function member(n: number, quotaBytes?: number, error?: string): MemberMetrics {
  return {
    member: `m-${n}`,
    endpoint: url(n),
    url: `${url(n)}/metrics`,
    findings: [],
    level: 'ok',
    series: [],
    ...(error ? { error } : {}),
    summary: {
      from: 0,
      to: 0,
      scrapes: 1,
      latencyBasis: 'since-start',
      walFsyncs: 0,
      backendCommits: 0,
      peerRoundTrips: 0,
      leaderChanges: 0,
      proposalsFailed: 0,
      grpcErrors: 0,
      grpcRequests: 0,
      ...(quotaBytes !== undefined ? { quotaBytes } : {}),
    },
  };
}

const metrics = (members: MemberMetrics[]): ClusterMetrics => ({
  cluster: 'edge-t',
  at: 0,
  windowMs: 60_000,
  members,
  level: 'ok',
  summary: '',
});

describe('settings in effect (health panel, Status tab)', () => {
  it("reads each member's quota from the scrape; a member that did not answer has none", () => {
    assert.deepEqual(
      quotasFromMetrics(
        metrics([member(1, 16 * MiB), member(2, 16 * MiB, 'connection refused'), member(3)]),
      ),
      [
        { endpoint: url(1), quotaBackendBytes: 16 * MiB },
        { endpoint: url(2) },
        { endpoint: url(3) },
      ],
    );
    assert.deepEqual(quotasFromMetrics(undefined), []);
  });

  it("names the members that run another quota than the inventory's, with the status line", () => {
    const c = edge();
    const s = settingsInEffect(
      c,
      quotasFromMetrics(metrics([member(1, 16 * MiB), member(2, 2 * 1024 * MiB), member(3)])),
    );
    assert.equal(s.inventoryQuota, "2 GiB (etcd's default)");
    assert.deepEqual(s.quotas, { [url(1)]: '16 MiB', [url(2)]: '2 GiB' });
    assert.deepEqual(s.differs, [url(1)]);
    assert.equal(
      s.drift,
      `quota: the inventory asks for etcd's default 2 GiB (no etcd.quotaBackendBytes), but etcd runs with ${url(1)} 16 MiB: apply it with \`k3s-etcd provision etcd --cluster edge-t\``,
    );
    assert.deepEqual(s.inventoryTuning, []);
  });

  it("agrees when every member runs the inventory's quota; the other keys in the inventory's words", () => {
    const c = edge({ quotaBackendBytes: 16 * MiB, heartbeatInterval: 500, electionTimeout: 5000 });
    const s = settingsInEffect(
      c,
      quotasFromMetrics(metrics([1, 2, 3].map((n) => member(n, 16 * MiB)))),
    );
    assert.equal(s.inventoryQuota, '16 MiB (etcd.quotaBackendBytes)');
    assert.deepEqual(s.differs, []);
    assert.equal(s.drift, undefined);
    assert.deepEqual(s.inventoryTuning, ['heartbeatInterval 500 ms', 'electionTimeout 5000 ms']);
  });
});
