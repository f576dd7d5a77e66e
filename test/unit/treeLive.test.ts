import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { buildTree, contextValueOf, type TreeNode } from '../../src/core/tree/model';
import type { ClusterSnapshot, HealthRow, StatusRow } from '../../src/shared/etcdTypes';

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
