import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { buildTree, contextValueOf, type TreeNode } from '../../src/core/tree/model';
import type { ClusterSnapshot, HealthRow, StatusRow } from '../../src/shared/etcdTypes';
import { clusterMetrics } from '../../src/core/metrics/scrape';
import { MetricsWindow } from '../../src/core/metrics/window';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');
const url = (n: number) => `https://127.0.1.2${n}:2379`;

function status(n: number, leader: number): StatusRow {
  return {
    endpoint: url(n),
    id: `a${n}`,
    version: '3.4.23',
    dbSize: 24_000_000,
    dbSizeInUse: 20_000_000,
    leader: `a${leader}`,
    isLeader: n === leader,
    isLearner: false,
    raftTerm: '8',
    raftIndex: '17010',
    raftAppliedIndex: '17010',
    errors: [],
  };
}

function health(n: number, ok: boolean): HealthRow {
  return ok
    ? { endpoint: url(n), health: true, tookMs: 3.9, alarms: [] }
    : {
        endpoint: url(n),
        health: false,
        tookMs: 2.1,
        alarms: [],
        problem: {
          code: 'refused',
          summary: `connection refused by 127.0.1.2${n}:2379`,
          hint: 'etcd is not running on this member',
        },
      };
}

function snapshot(down: number[]): ClusterSnapshot {
  const hs = [1, 2, 3].map((n) => health(n, !down.includes(n)));
  return {
    at: '2026-11-24T10:00:00.000Z',
    endpoints: [1, 2, 3].map(url),
    health: hs,
    status: [1, 2, 3].filter((n) => !down.includes(n)).map((n) => status(n, 2)),
    members: [1, 2, 3].map((n) => ({
      id: `a${n}`,
      name: `edge-${n}`,
      peerUrls: [],
      clientUrls: [url(n)],
      isLearner: false,
    })),
    summary: `${3 - down.length}/3 healthy, leader edge-2`,
    healthy: down.length === 0,
  };
}

function members(roots: TreeNode[]): TreeNode[] {
  return (roots[0]?.children ?? [])
    .flatMap((h) => h.children ?? [])
    .filter((n) => n.kind === 'role' && n.role === 'etcd');
}

describe('tree: live etcd state', () => {
  it('members show leader/follower, health, version, DB size and raft; the cluster its summary', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const roots = buildTree(inv, { health: new Map([['edge-a', { snapshot: snapshot([]) }]]) });
    assert.equal(roots[0]?.description, '3/3 healthy, leader edge-2 · external etcd');
    assert.deepEqual(
      members(roots).map((m) => m.description),
      [
        'follower · healthy · v3.4.23 · 24 MB (in use 20 MB) · raft 8/17010',
        'leader · healthy · v3.4.23 · 24 MB (in use 20 MB) · raft 8/17010',
        'follower · healthy · v3.4.23 · 24 MB (in use 20 MB) · raft 8/17010',
      ],
    );
    assert.deepEqual(members(roots).map(contextValueOf), ['member', 'member+leader', 'member']);
    assert.match(
      members(roots)[1]?.tooltip ?? '',
      /ID a2 \(leader\)\nversion 3\.4\.23\nDB size 24 MB, in use 20 MB\nraft term 8, index 17010, applied 17010/,
    );
    assert.equal(roots[0]?.kind === 'cluster' ? roots[0].state : undefined, 'healthy');
  });

  it('a dead member says why, is flagged unhealthy, and the cluster is degraded', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const roots = buildTree(inv, { health: new Map([['edge-a', { snapshot: snapshot([3]) }]]) });
    const dead = members(roots)[2];
    assert.equal(dead?.description, 'unhealthy: connection refused by 127.0.1.23:2379');
    assert.equal(contextValueOf(dead!), 'member+unhealthy');
    assert.match(dead?.tooltip ?? '', /what to do: etcd is not running on this member/);
    assert.equal(roots[0]?.kind === 'cluster' ? roots[0].state : undefined, 'degraded');
    const allDown = buildTree(inv, {
      health: new Map([['edge-a', { snapshot: snapshot([1, 2, 3]) }]]),
    });
    assert.equal(allDown[0]?.kind === 'cluster' ? allDown[0].state : undefined, 'down');
  });

  it('without certificates the cluster says to generate them', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const roots = buildTree(inv, {
      health: new Map([
        ['edge-a', { error: { code: 'certs-missing', message: 'no admin certificate' } }],
      ]),
    });
    assert.equal(roots[0]?.description, 'generate certificates to see health · external etcd');
    assert.equal(
      members(roots)[0]?.description,
      'https://127.0.1.21:2379',
      'members keep their static description',
    );
  });
});

describe('tree: metrics against etcd guidance', () => {
  it('warns on the member whose metrics break a rule, with every reason, and leaves the others', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const window = new MetricsWindow();
    const fsync = (slowMs: number) => ({
      buckets: [
        { le: 0.001, count: slowMs < 1 ? 100 : 0 },
        { le: 0.064, count: 100 },
        { le: Infinity, count: 100 },
      ],
      count: 100,
      sum: 1,
    });
    for (const n of [1, 2, 3]) {
      window.add(`edge-${n}`, { at: 0, hasLeader: 1, walFsync: fsync(n === 3 ? 40 : 0.5) });
    }
    const targets = [1, 2, 3].map((n) => ({
      member: `edge-${n}`,
      endpoint: url(n),
      url: `${url(n)}/metrics`,
    }));
    const metrics = clusterMetrics('edge-a', targets, window, { at: 0, errors: new Map() });
    const roots = buildTree(inv, {
      health: new Map([['edge-a', { snapshot: snapshot([]) }]]),
      metrics: new Map([['edge-a', metrics]]),
    });
    const [m1, , m3] = members(roots);
    assert.equal(m1?.kind === 'role' ? m1.metrics : 'x', undefined);
    assert.deepEqual(m3?.kind === 'role' ? m3.metrics : undefined, {
      level: 'bad',
      findings: ['disk too slow for etcd: WAL fsync p99 63 ms > 10 ms since etcd started'],
    });
    assert.equal(
      m3?.description,
      'disk too slow for etcd: WAL fsync p99 63 ms > 10 ms since etcd started · follower · healthy · v3.4.23 · 24 MB (in use 20 MB) · raft 8/17010',
    );
    assert.match(m3?.tooltip ?? '', /metrics \(etcd's guidance\):\n {2}BROKEN: disk too slow/);
  });
});
