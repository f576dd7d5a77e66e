import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { buildTree, contextValueOf, type TreeNode } from '../../src/core/tree/model';
import type { ClusterSnapshot, HealthRow, StatusRow } from '../../src/shared/etcdTypes';
import { clusterMetrics } from '../../src/core/metrics/scrape';
import { MetricsWindow } from '../../src/core/metrics/window';
import { historyKey, seenAnswering, type ClusterHistory } from '../../src/core/tree/provisioned';
import type { Inventory } from '../../src/core/inventory/types';
import { ClusterHistoryStore } from '../../src/editor/tree/clusterHistory';

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

type Why = 'refused' | 'timeout' | 'unknown-authority';

function health(n: number, ok: boolean, why: Why = 'refused'): HealthRow {
  const summary: Record<Why, string> = {
    refused: `connection refused by 127.0.1.2${n}:2379`,
    timeout: `no answer from 127.0.1.2${n}:2379 within the timeout`,
    'unknown-authority': `TLS unknown authority: 127.0.1.2${n}:2379's certificate is not signed by the CA`,
  };
  return ok
    ? { endpoint: url(n), health: true, tookMs: 3.9, alarms: [] }
    : {
        endpoint: url(n),
        health: false,
        tookMs: 2.1,
        alarms: [],
        problem: { code: why, summary: summary[why], hint: 'etcd is not running on this member' },
      };
}

function snapshot(down: number[], why: (n: number) => Why = () => 'refused'): ClusterSnapshot {
  const hs = [1, 2, 3].map((n) => health(n, !down.includes(n), why(n)));
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
    summary:
      down.length === 3 ? '0/3 healthy, no leader' : `${3 - down.length}/3 healthy, leader edge-2`,
    healthy: down.length === 0,
  };
}

function members(roots: TreeNode[]): TreeNode[] {
  return (roots[0]?.children ?? [])
    .flatMap((h) => h.children ?? [])
    .filter((n) => n.kind === 'role' && n.role === 'etcd');
}

describe('tree: live etcd state', () => {
  it('members lead with role and health; size, version, raft and address follow; the cluster its summary', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const roots = buildTree(inv, { health: new Map([['edge-a', { snapshot: snapshot([]) }]]) });
    // The summary alone fits the row; the store is in the tooltip.
    assert.equal(roots[0]?.description, '3/3 healthy, leader edge-2');
    assert.match(roots[0]?.tooltip ?? '', /^edge-a: external etcd v\d/);
    assert.deepEqual(
      members(roots).map((m) => [m.label, m.description]),
      [1, 2, 3].map((n) => [
        n === 2 ? 'etcd · leader · healthy' : 'etcd · follower · healthy',
        `24 MB (in use 20 MB) · v3.4.23 · raft 8/17010 · ${url(n)}`,
      ]),
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
    assert.equal(dead?.label, 'etcd · unhealthy');
    assert.equal(dead?.description, 'connection refused by 127.0.1.23:2379');
    assert.equal(contextValueOf(dead!), 'member+unhealthy');
    assert.match(dead?.tooltip ?? '', /what to do: etcd is not running on this member/);
    assert.equal(roots[0]?.kind === 'cluster' ? roots[0].state : undefined, 'degraded');
    // All down, once the cluster has been seen answering: red, not "not provisioned yet".
    const allDown = buildTree(inv, {
      health: new Map([['edge-a', { snapshot: snapshot([1, 2, 3]) }]]),
      history: new Map([['edge-a', { answered: true }]]),
    });
    assert.equal(allDown[0]?.kind === 'cluster' ? allDown[0].state : undefined, 'down');
  });

  it('a NOSPACE alarm shows on the cluster and the member that raised it, with the rescue at hand', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const snap = snapshot([]);
    // etcd answers, but its alarm makes the health probe fail (as checks.ts reports it).
    snap.health[1] = {
      ...snap.health[1]!,
      health: false,
      alarms: ['NOSPACE'],
      problem: {
        code: 'alarm',
        summary: 'Active Alarm(s): NOSPACE',
        hint: 'compact, defragment, disarm',
      },
    };
    const roots = buildTree(inv, { health: new Map([['edge-a', { snapshot: snap }]]) });
    assert.equal(
      roots[0]?.description,
      'NOSPACE: database full, writes refused · 3/3 healthy, leader edge-2',
    );
    assert.match(roots[0]?.tooltip ?? '', /Maintain etcd… \(right-click\) rescues it/);
    assert.equal(contextValueOf(roots[0]!), 'cluster+external-etcd+nospace');
    const full = members(roots)[1];
    assert.equal(full?.description, `NOSPACE: database full, writes refused · ${url(2)}`);
    assert.match(full?.tooltip ?? '', /alarms: NOSPACE\nNOSPACE: the database reached its quota/);
    assert.equal(members(roots)[0]?.description?.startsWith('24 MB'), true);
  });

  it("the maintenance timer's last run is in the cluster's tooltip; one that failed also in its row", async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const run = {
      host: 'edge-2',
      startedAt: '2026-12-06T03:17:00Z',
      finishedAt: '2026-12-06T03:17:09Z',
      summary: 'defragmented edge-1, edge-3, edge-2',
      defragmented: ['edge-1', 'edge-3', 'edge-2'],
    };
    const done = buildTree(inv, {
      health: new Map([
        ['edge-a', { snapshot: { ...snapshot([]), maintenance: { ...run, result: 'done' } } }],
      ]),
    });
    assert.equal(done[0]?.description, '3/3 healthy, leader edge-2');
    assert.match(
      done[0]?.tooltip ?? '',
      /scheduled maintenance 2026-12-06 \d\d:\d\d:09 .* on edge-2: done: defragmented edge-1, edge-3, edge-2/,
    );
    const failed = buildTree(inv, {
      health: new Map([
        [
          'edge-a',
          {
            snapshot: {
              ...snapshot([]),
              maintenance: {
                ...run,
                result: 'refused',
                summary: 'not every member answers (edge-3)',
              },
            },
          },
        ],
      ]),
    });
    assert.equal(
      failed[0]?.description,
      '3/3 healthy, leader edge-2 · scheduled maintenance refused',
    );
    assert.match(failed[0]?.tooltip ?? '', /on edge-2: refused: not every member answers/);
  });

  it('without certificates the cluster says to generate them', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const roots = buildTree(inv, {
      health: new Map([
        ['edge-a', { error: { code: 'certs-missing', message: 'no admin certificate' } }],
      ]),
    });
    assert.equal(roots[0]?.description, 'no certificates yet');
    assert.match(
      roots[0]?.tooltip ?? '',
      /\nGenerate Certificate Set to see health\.\nno admin certificate$/,
    );
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
    // Eight scrapes 10 s apart, 50 fsyncs between each: edge-3's all in (32 ms, 64 ms], a breach
    // that lasts 70 s; the others' under 1 ms.
    const fsync = (slow: boolean, i: number) => ({
      buckets: [
        { le: 0.001, count: slow ? 0 : 50 * i },
        { le: 0.064, count: 50 * i },
        { le: Infinity, count: 50 * i },
      ],
      count: 50 * i,
      sum: i,
    });
    for (let i = 0; i < 8; i++)
      for (const n of [1, 2, 3])
        window.add(`edge-${n}`, { at: i * 10_000, hasLeader: 1, walFsync: fsync(n === 3, i) });
    const targets = [1, 2, 3].map((n) => ({
      member: `edge-${n}`,
      endpoint: url(n),
      url: `${url(n)}/metrics`,
    }));
    const metrics = clusterMetrics('edge-a', targets, window, { at: 70_000, errors: new Map() });
    const roots = buildTree(inv, {
      health: new Map([['edge-a', { snapshot: snapshot([]) }]]),
      metrics: new Map([['edge-a', metrics]]),
    });
    const [m1, , m3] = members(roots);
    assert.equal(m1?.kind === 'role' ? m1.metrics : 'x', undefined);
    assert.deepEqual(m3?.kind === 'role' ? m3.metrics : undefined, {
      level: 'bad',
      findings: ['disk too slow for etcd: WAL fsync p99 63 ms > 10 ms'],
    });
    assert.equal(m3?.label, 'etcd · follower · healthy');
    assert.equal(
      m3?.description,
      `disk too slow for etcd: WAL fsync p99 63 ms > 10 ms · 24 MB (in use 20 MB) · v3.4.23 · raft 8/17010 · ${url(3)}`,
    );
    assert.match(m3?.tooltip ?? '', /metrics \(etcd's guidance\):\n {2}BROKEN: disk too slow/);
  });
});

describe('tree: a cluster not provisioned yet', () => {
  const tree = async (snap: ClusterSnapshot, history?: ClusterHistory) =>
    buildTree(await loadInventoryFile(EXAMPLE), {
      health: new Map([['edge-a', { snapshot: snap }]]),
      ...(history ? { history: new Map([['edge-a', history]]) } : {}),
    });
  const stateOf = (roots: TreeNode[]) => (roots[0]?.kind === 'cluster' ? roots[0].state : '');

  it('every member refusing and never seen answering: neutral, with Provision etcd at hand', async () => {
    const roots = await tree(snapshot([1, 2, 3]));
    const cluster = roots[0]!;
    assert.equal(stateOf(roots), 'unprovisioned');
    assert.equal(cluster.description, 'not provisioned yet');
    assert.equal(contextValueOf(cluster), 'cluster+external-etcd+unprovisioned');
    assert.match(
      cluster.tooltip ?? '',
      /Not provisioned yet: no member answers \(connection refused by all 3 members\)/,
    );
    assert.match(
      cluster.tooltip ?? '',
      /\nProvision etcd \(the inline action, or right-click > Provision etcd\)/,
    );
    assert.deepEqual(
      members(roots).map((m) => [m.label, m.description, contextValueOf(m)]),
      [1, 2, 3].map((n) => ['etcd · not provisioned yet', url(n), 'member+unprovisioned']),
    );
    const m = members(roots)[0]!;
    assert.equal(m.kind === 'role' ? m.live : 'x', undefined, 'not drawn as an unhealthy member');
    assert.match(
      m.tooltip ?? '',
      /connection refused by 127\.0\.1\.21:2379, and this workspace has never seen the cluster answer\.\nProvision etcd/,
    );
    // Hosts that are not up yet (no answer at all) are the same.
    assert.equal(stateOf(await tree(snapshot([1, 2, 3], () => 'timeout'))), 'unprovisioned');
  });

  it('stays red when the cluster answered before, was provisioned here, or something answers', async () => {
    assert.equal(stateOf(await tree(snapshot([1, 2, 3]), { answered: true })), 'down');
    assert.equal(stateOf(await tree(snapshot([1, 2, 3]), { provisioned: true })), 'down');
    const down = members(await tree(snapshot([1, 2, 3]), { answered: true }));
    assert.deepEqual(
      down.map((m) => [m.label, contextValueOf(m)]),
      [1, 2, 3].map(() => ['etcd · unhealthy', 'member+unhealthy']),
    );
    // A TLS handshake failure is something answering: not a cluster to provision.
    const tls = snapshot([1, 2, 3], (n) => (n === 2 ? 'unknown-authority' : 'refused'));
    assert.equal(stateOf(await tree(tls)), 'down');
    // One member up and two refusing is a degraded cluster.
    assert.equal(stateOf(await tree(snapshot([1, 3]))), 'degraded');
  });

  it('remembers answers per cluster name and client URLs', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    assert.equal(inv.status, 'ok');
    const cluster = (inv as { inventory: Inventory }).inventory.clusters[0]!;
    assert.equal(historyKey(cluster), `edge-a ${url(1)} ${url(2)} ${url(3)}`);
    assert.equal(seenAnswering(cluster, snapshot([3])), true);
    assert.equal(seenAnswering(cluster, snapshot([1, 2, 3])), false);
    // A snapshot of other addresses (the inventory changed since) says nothing of this cluster.
    const moved = { ...snapshot([]), endpoints: [url(1), url(2), 'https://10.0.0.9:2379'] };
    assert.equal(seenAnswering(cluster, moved), false);
  });
});

describe('tree: what the workspace remembers of a cluster', () => {
  /** A Memento kept in a Map, as VS Code's workspace state is. */
  const memento = (init: Record<string, unknown> = {}) => {
    const data = new Map(Object.entries(init));
    return {
      data,
      get: <T>(k: string) => data.get(k) as T | undefined,
      update: (k: string, v: unknown) => {
        data.set(k, v);
        return Promise.resolve();
      },
      keys: () => [...data.keys()],
    };
  };

  it('records an answer once and a provisioning run, and ignores what it did not write', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const cluster = (inv as { inventory: Inventory }).inventory.clusters[0]!;
    const m = memento({ 'k3sEtcd.clusterHistory': { junk: 'x', [historyKey(cluster)]: 7 } });
    const store = new ClusterHistoryStore(m);
    assert.deepEqual(store.of(cluster), {});
    assert.equal(await store.note(cluster, 'answered'), true);
    assert.equal(await store.note(cluster, 'answered'), false, 'the first answer is kept');
    assert.deepEqual(store.of(cluster), { answered: true });
    await store.note(cluster, 'provisioned');
    assert.deepEqual(store.of(cluster), { answered: true, provisioned: true });
    // Another address is another cluster.
    const moved = { ...cluster, etcd: { ...cluster.etcd, clientPort: 12379 } };
    assert.deepEqual(store.of(moved), {});
  });
});
