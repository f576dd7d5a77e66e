import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { buildTree, contextValueOf, type TreeNode } from '../../src/core/tree/model';
import type { ClusterSnapshot, HealthRow, StatusRow } from '../../src/shared/etcdTypes';
import { clusterMetrics } from '../../src/core/metrics/scrape';
import { MetricsWindow } from '../../src/core/metrics/window';
import { historyKey, seenAnswering, type ClusterHistory } from '../../src/core/tree/provisioned';
import type { Cluster, Inventory } from '../../src/core/inventory/types';
import { ClusterHistoryStore } from '../../src/editor/tree/clusterHistory';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import {
  parseUnitAnswer,
  UNIT_LOOK_COMMAND,
  unitLookOf,
  unreadWhy,
} from '../../src/core/tree/unitLook';
import { UNIT_FILE } from '../../src/core/etcd/memberHost';
import { shellQuote } from '../../src/core/ssh/quote';
import { K3sEtcdError } from '../../src/core/errors';

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
    // Before any host was read it is what this workspace knows, not a fact, and says so.
    assert.match(
      cluster.tooltip ?? '',
      /Not provisioned yet, as far as this workspace knows: no member answers \(connection refused by all 3 members\) and it has never seen this cluster answer\.\nNot confirmed on the hosts: they were not checked for etcd's unit \(\/etc\/systemd\/system\/etcd\.service\) yet .*if etcd was provisioned from elsewhere, every member is down\./,
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
      /connection refused by 127\.0\.1\.21:2379, and this workspace has never seen the cluster answer \(not confirmed on the hosts: see the cluster's tooltip\)\.\nProvision etcd/,
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

  it("a host with etcd's unit (provisioned from elsewhere) makes all members refusing red, with the real reason", async () => {
    // The cluster was never seen answering here (a new workspace, the CLI, another machine).
    const roots = await tree(snapshot([1, 2, 3]), { unitSeen: true });
    assert.equal(stateOf(roots), 'down');
    assert.equal(roots[0]!.description, '0/3 healthy, no leader');
    assert.doesNotMatch(contextValueOf(roots[0]!), /unprovisioned/);
    const down = members(roots);
    assert.deepEqual(
      down.map((m) => [m.label, contextValueOf(m)]),
      [1, 2, 3].map(() => ['etcd · unhealthy', 'member+unhealthy']),
    );
    assert.match(down[0]!.tooltip ?? '', /connection refused by 127\.0\.1\.21:2379/);
    assert.doesNotMatch(down[0]!.tooltip ?? '', /not provisioned/);
  });

  it('every host read without the unit: "not provisioned yet" as a fact, with when it was checked', async () => {
    const at = '2026-11-24T10:00:05.000Z';
    const roots = await tree(snapshot([1, 2, 3]), { unitLook: { at, unread: [] } });
    const cluster = roots[0]!;
    assert.equal(stateOf(roots), 'unprovisioned');
    assert.equal(cluster.description, 'not provisioned yet');
    const tip = cluster.tooltip ?? '';
    assert.match(
      tip,
      /\nNot provisioned yet: no member answers \(connection refused by all 3 members\)\.\nNo member host has etcd's unit \(\/etc\/systemd\/system\/etcd\.service\), checked 2026-11-24 \d\d:\d\d:05 UTC/,
    );
    assert.doesNotMatch(tip, /as far as this workspace knows|elsewhere|Not confirmed/);
    assert.match(
      members(roots)[0]!.tooltip ?? '',
      /connection refused by 127\.0\.1\.21:2379, and no member host has etcd's unit \(\/etc\/systemd\/system\/etcd\.service\)\./,
    );
  });

  it('hosts that could not be read: still neutral, but not claimed as a fact, and why is said', async () => {
    const unitLook = {
      at: '2026-11-24T10:00:05.000Z',
      unread: [
        {
          host: 'edge-2',
          why: 'SSH needs a password or a key passphrase, which a refresh never asks for',
        },
      ],
    };
    const roots = await tree(snapshot([1, 2, 3]), { unitLook });
    assert.equal(stateOf(roots), 'unprovisioned');
    const tip = roots[0]!.tooltip ?? '';
    assert.match(tip, /Not provisioned yet, as far as this workspace knows: no member answers/);
    assert.match(
      tip,
      /\nNot confirmed on the hosts: at 2026-11-24 \d\d:\d\d:05 UTC\S* etcd's unit \(\/etc\/systemd\/system\/etcd\.service\) could not be looked for on edge-2 \(SSH needs a password or a key passphrase, which a refresh never asks for\); if etcd was provisioned from elsewhere, every member is down\./,
    );
    assert.doesNotMatch(tip, /No member host has etcd's unit/);
    // Hosts that failed alike are named together.
    const alike = await tree(snapshot([1, 2, 3]), {
      unitLook: {
        at: unitLook.at,
        unread: [
          { host: 'edge-1', why: 'SSH refused the connection' },
          { host: 'edge-2', why: 'no SSH answer in time' },
          { host: 'edge-3', why: 'SSH refused the connection' },
        ],
      },
    });
    assert.match(
      alike[0]!.tooltip ?? '',
      /could not be looked for on edge-1, edge-3 \(SSH refused the connection\); edge-2 \(no SSH answer in time\); if etcd/,
    );
    assert.match(members(roots)[0]!.tooltip ?? '', /not confirmed on the hosts/);
  });

  it('the unit look: one read-only line per host, its answer parsed as hostile input', async () => {
    // The command as a real shell runs it, against a unit file there and one not there.
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-unit-'));
    try {
      const unit = join(dir, 'etcd.service');
      const run = () =>
        execFileSync(
          'sh',
          ['-c', UNIT_LOOK_COMMAND.split(shellQuote(UNIT_FILE)).join(shellQuote(unit))],
          {
            encoding: 'utf8',
          },
        );
      assert.ok(UNIT_LOOK_COMMAND.includes(shellQuote(UNIT_FILE)));
      assert.equal(parseUnitAnswer(run()), false);
      await writeFile(unit, '[Unit]\n');
      assert.equal(parseUnitAnswer(run()), true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(parseUnitAnswer('motd\nk3s-etcd-unit=present\n'), true);
    for (const hostile of [
      '',
      'k3s-etcd-unit=yes\n',
      'k3s-etcd-unit=present\nk3s-etcd-unit=absent\n',
      'k3s-etcd-unit=present; rm -rf /\n',
    ])
      assert.equal(parseUnitAnswer(hostile), undefined, JSON.stringify(hostile));
    // A host with the unit wins; unread hosts are kept with why; present hosts are not "unread".
    const at = new Date('2026-11-24T10:00:05Z');
    assert.deepEqual(
      unitLookOf(
        [
          { host: 'edge-1', present: false },
          { host: 'edge-2', why: 'refused' },
        ],
        at,
      ),
      { seen: false, look: { at: at.toISOString(), unread: [{ host: 'edge-2', why: 'refused' }] } },
    );
    assert.equal(
      unitLookOf(
        [
          { host: 'edge-1', present: true },
          { host: 'edge-2', why: 'x' },
        ],
        at,
      ).seen,
      true,
    );
    assert.match(
      unreadWhy(new K3sEtcdError('ssh-auth', 'All authentication methods failed')),
      /needs a password .* never asks/,
    );
    assert.match(
      unreadWhy(new K3sEtcdError('ssh-host-key-unknown', 'no verified host key')),
      /host key is not known yet/,
    );
    assert.equal(
      unreadWhy(
        new K3sEtcdError(
          'ssh-refused',
          '127.0.1.22:22 refused the connection: sshd is not running there, or …',
        ),
      ),
      'SSH refused the connection',
    );
    assert.equal(unreadWhy(new Error(`boom\n${'x'.repeat(300)}`)), 'boom');
    assert.equal(unreadWhy(new Error('y'.repeat(300))).length, 121);
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
  const moved = (c: Cluster, clientPort = 12379): Cluster => ({
    ...c,
    etcd: { ...c.etcd, clientPort },
  });
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
    // A look for etcd's unit: the last one is kept; a host seen with it ends the looks.
    const look = { at: '2026-11-24T10:00:05.000Z', unread: [{ host: 'edge-2', why: 'refused' }] };
    await store.noteUnitLook(moved(cluster), look);
    assert.deepEqual(store.of(moved(cluster)), { unitLook: look });
    assert.equal(await store.note(moved(cluster), 'unitSeen'), true);
    assert.equal(await store.note(moved(cluster), 'unitSeen'), false);
    assert.deepEqual(store.of(moved(cluster)), { unitSeen: true });
    // Another address is another cluster.
    assert.deepEqual(store.of(moved(cluster, 12380)), {});
  });

  it('a stored look of the wrong shape is left out, and its words are bounded', async () => {
    const inv = await loadInventoryFile(EXAMPLE);
    const cluster = (inv as { inventory: Inventory }).inventory.clusters[0]!;
    const key = historyKey(cluster);
    for (const unitLook of [
      { at: 'yesterday', unread: [] },
      { at: '2026-11-24T10:00:05Z', unread: 'edge-2' },
      { at: '2026-11-24T10:00:05Z', unread: [{ host: 'edge-2', why: 7 }] },
    ]) {
      const store = new ClusterHistoryStore(
        memento({ 'k3sEtcd.clusterHistory': { [key]: { unitLook } } }),
      );
      assert.deepEqual(store.of(cluster), {}, JSON.stringify(unitLook));
    }
    const long = 'x'.repeat(5000);
    const store = new ClusterHistoryStore(
      memento({
        'k3sEtcd.clusterHistory': {
          [key]: {
            unitLook: { at: '2026-11-24T10:00:05Z', unread: [{ host: 'edge-2', why: long }] },
          },
        },
      }),
    );
    assert.equal(store.of(cluster).unitLook?.unread[0]?.why.length, 300);
  });
});
