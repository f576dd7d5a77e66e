import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildBackup } from '../../src/core/inventory/backup';
import { loadInventoryFile, parseInventory } from '../../src/core/inventory/parse';
import { generateCertificateSet } from '../../src/core/pki/set';
import { formatContextValue, parseContextValue } from '../../src/core/tree/contextValue';
import { buildTree, contextValueOf, indexParents, type TreeNode } from '../../src/core/tree/model';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');
const manifest = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as {
  contributes: { menus: Record<string, Array<{ command: string; when?: string; group?: string }>> };
};

function walk(nodes: TreeNode[], out: TreeNode[] = []): TreeNode[] {
  for (const n of nodes) {
    out.push(n);
    walk(n.children ?? [], out);
  }
  return out;
}

/** The `viewItem =~ /re/` of a menu entry, as a RegExp. */
function viewItemRegex(when: string | undefined): RegExp | undefined {
  const m = /viewItem =~ \/(.+?)\/(\s|$)/.exec(when ?? '');
  return m?.[1] ? new RegExp(m[1]) : undefined;
}

describe('contextValue grammar', () => {
  it('formats kind plus flags in a fixed order, whatever order they come in', () => {
    assert.equal(formatContextValue('member'), 'member');
    assert.equal(formatContextValue('member', ['unhealthy', 'leader']), 'member+leader+unhealthy');
    assert.equal(
      formatContextValue('member', ['leader', 'unhealthy', 'leader']),
      'member+leader+unhealthy',
    );
  });

  it('parses what it formats and rejects what is not in the grammar', () => {
    const { kind, flags } = parseContextValue('member+leader+learner');
    assert.equal(kind, 'member');
    assert.deepEqual([...flags], ['leader', 'learner']);
    assert.throws(() => parseContextValue('pod+leader'), /not a k3s-etcd context value/);
    assert.throws(() => parseContextValue('member+boss'), /unknown flag "boss"/);
  });
});

describe('tree model', () => {
  it("the cluster's tooltip names the keyspace's top consumer from the last scan", async () => {
    const result = await loadInventoryFile(EXAMPLE);
    assert.doesNotMatch(buildTree(result)[0]!.tooltip ?? '', /Top consumer/);
    const keyspace = new Map([
      [
        'edge-a',
        {
          revision: '9',
          keys: 60_100,
          bytes: 30_000_000,
          resources: [{ resource: 'events\x1b[2J', keys: 60_000, bytes: 16_000_000 }],
          largest: [],
          at: Date.UTC(2026, 0, 2, 3, 4, 5),
        },
      ],
    ]);
    const tip = buildTree(result, { keyspace })[0]!.tooltip ?? '';
    assert.match(
      tip,
      /Top consumer: events\\x1b\[2J, 16 MB of 30 MB \(53%\) in 60000 keys \(scanned /,
    );
  });

  it('clusters > hosts > roles for the example, with descriptions', async () => {
    const roots = buildTree(await loadInventoryFile(EXAMPLE));
    assert.equal(roots.length, 1);
    const cluster = roots[0]!;
    assert.equal(cluster.kind, 'cluster');
    assert.equal(cluster.label, 'edge-a');
    assert.equal(cluster.description, 'external etcd · 3 hosts · 3 members');
    assert.deepEqual(
      cluster.children?.map((h) => [h.label, h.description]),
      [
        ['edge-1', 'root@127.0.1.21:22'],
        ['edge-2', 'root@127.0.1.22:22'],
        ['edge-3', 'root@127.0.1.23:22'],
        ['Certificates', 'not generated'],
      ],
    );
    const edge1 = cluster.children![0]!;
    assert.deepEqual(
      edge1.children?.map((r) => [r.label, r.description]),
      [
        ['etcd member', 'https://127.0.1.21:2379'],
        ['K3s server', undefined],
      ],
    );
    assert.deepEqual(walk(roots).map(contextValueOf), [
      'cluster+external-etcd',
      'host+etcd+k3s-server',
      'member',
      'k3sServer',
      'host+etcd',
      'member',
      'host+etcd',
      'member',
      'certificates+missing',
    ]);
  });

  it('ids are unique and every child knows its parent (so reveal works)', async () => {
    const roots = buildTree(await loadInventoryFile(EXAMPLE));
    const all = walk(roots);
    assert.equal(new Set(all.map((n) => n.id)).size, all.length);
    const parents = indexParents(roots);
    for (const n of all) {
      for (const c of n.children ?? []) assert.equal(parents.get(c.id), n);
    }
    assert.equal(parents.get(roots[0]!.id), undefined);
  });

  it('an invalid inventory shows only problem nodes, errors first', () => {
    const roots = buildTree(parseInventory('version: 3\nclusters: []\n', '/w/k3s-etcd.yaml'));
    assert.ok(roots.length >= 2);
    assert.ok(roots.every((n) => n.kind === 'problem'));
    assert.equal(contextValueOf(roots[0]!), 'problem+error');
    assert.equal(roots[0]!.description, 'k3s-etcd.yaml:1:10');
  });

  it('warnings appear above the clusters of a valid inventory', () => {
    const text =
      'version: 1\nclusters:\n  - name: a\n    hosts:\n      - { name: h1, address: 10.0.0.1, roles: [etcd] }\n      - { name: h2, address: 10.0.0.2, roles: [etcd] }\n';
    const roots = buildTree(parseInventory(text, '/w/k3s-etcd.yaml'));
    assert.deepEqual(roots.map(contextValueOf), ['problem+warning', 'cluster+external-etcd']);
  });

  it('Restricted Mode: the trust item comes first, then the inventory as usual', async () => {
    const result = await loadInventoryFile(EXAMPLE);
    const roots = buildTree(result, { restricted: true });
    assert.deepEqual(roots.map(contextValueOf), ['trust', 'cluster+external-etcd']);
    const trust = roots[0]!;
    assert.equal(trust.kind, 'trust');
    assert.equal(trust.label, 'Trust this workspace to connect');
    assert.equal(trust.kind === 'trust' && trust.command, 'workbench.trust.manage');
    assert.match(trust.tooltip ?? '', /connects to nothing: no SSH, no etcd health or metrics/);
    // The hosts and members are all there, only nothing is live.
    assert.deepEqual(walk(roots.slice(1)), walk(buildTree(result)));
    // An invalid inventory: the item, then its problems.
    const invalid = buildTree(parseInventory('version: 3\nclusters: []\n', '/w/k3s-etcd.yaml'), {
      restricted: true,
    });
    assert.equal(invalid[0]?.kind, 'trust');
    assert.ok(invalid.slice(1).every((n) => n.kind === 'problem'));
    // Trusted (the default): no such item.
    assert.ok(!walk(buildTree(result, { restricted: false })).some((n) => n.kind === 'trust'));
    assert.deepEqual(
      buildTree({ status: 'missing', file: '/w/x', problems: [] }, { restricted: true }),
      [],
    );
  });

  it('a missing inventory gives an empty tree (the welcome view shows instead)', () => {
    assert.deepEqual(buildTree({ status: 'missing', file: '/w/k3s-etcd.yaml', problems: [] }), []);
  });

  it('every item menu in package.json matches the nodes it is meant for, and no others', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-tree-'));
    try {
      const loaded = await loadInventoryFile(EXAMPLE);
      assert.equal(loaded.status, 'ok');
      if (loaded.status !== 'ok') return;
      const cluster = {
        ...loaded.inventory.clusters[0]!,
        pki: { ...loaded.inventory.clusters[0]!.pki, dir },
      };
      const generated = await generateCertificateSet(cluster);
      const roots = buildTree(loaded, { indexes: new Map([['edge-a', generated.index]]) });
      const problems = buildTree(parseInventory('version: 3\nclusters: []\n', '/w/k3s-etcd.yaml'));
      // And the same cluster not provisioned yet: every member refused, never seen answering.
      const refused = (n: number) => ({
        endpoint: `https://127.0.1.2${n}:2379`,
        health: false,
        tookMs: 1,
        alarms: [],
        problem: { code: 'refused' as const, summary: 'connection refused', hint: '' },
      });
      const unprovisioned = buildTree(loaded, {
        health: new Map([
          [
            'edge-a',
            {
              snapshot: {
                at: '2026-11-24T10:00:00.000Z',
                endpoints: [1, 2, 3].map((n) => `https://127.0.1.2${n}:2379`),
                health: [1, 2, 3].map(refused),
                status: [],
                members: [],
                summary: '0/3 healthy, no leader',
                healthy: false,
              },
            },
          ],
        ]),
      });
      assert.equal(contextValueOf(unprovisioned[0]!), 'cluster+external-etcd+unprovisioned');
      // And at its quota: a member reports NOSPACE (the rescue goes inline).
      const full = (n: number) => ({
        endpoint: `https://127.0.1.2${n}:2379`,
        health: false,
        tookMs: 1,
        alarms: ['NOSPACE'],
        problem: { code: 'alarm' as const, summary: 'Active Alarm(s): NOSPACE', hint: '' },
      });
      const noSpace = buildTree(loaded, {
        health: new Map([
          [
            'edge-a',
            {
              snapshot: {
                at: '2026-11-24T10:00:00.000Z',
                endpoints: [1, 2, 3].map((n) => `https://127.0.1.2${n}:2379`),
                health: [1, 2, 3].map(full),
                status: [],
                members: [],
                summary: '0/3 healthy, leader edge-2',
                healthy: false,
              },
            },
          ],
        ]),
        history: new Map([['edge-a', { answered: true }]]),
      });
      assert.equal(contextValueOf(noSpace[0]!), 'cluster+external-etcd+nospace');
      // And with a backup block: its Backups node, never read and then not fresh.
      const withBackup = {
        ...loaded,
        inventory: {
          ...loaded.inventory,
          clusters: [
            {
              ...cluster,
              backup: buildBackup(
                { encryption: { recipientsFile: 'backup-recipients.pem' } },
                (p) => join(dir, p),
              ),
            },
          ],
        },
      };
      const backups = [
        ...buildTree(withBackup),
        ...buildTree(withBackup, {
          backups: new Map([['edge-a', { at: Date.now(), error: 'edge-1: refused' }]]),
        }),
      ];
      assert.deepEqual(
        walk(backups)
          .filter((n) => n.kind === 'cluster' || n.kind === 'backups')
          .map(contextValueOf),
        [
          'cluster+external-etcd+backup',
          'backups',
          'cluster+external-etcd+backup',
          'backups+warning',
        ],
      );
      // A CA rotation under way: said first on the Certificates node, which offers Rotate CA… inline.
      const rotating = buildTree(loaded, {
        rotations: new Map([
          [
            'edge-a',
            {
              phase: 2,
              done: 1,
              of: 4,
              startedAt: '2026-12-07T01:00:00.000Z',
              newCaUntil: '2036-12-05T01:00:00.000Z',
            },
          ],
        ]),
      });
      const certsNode = walk(rotating).find((n) => n.kind === 'certificates')!;
      assert.match(certsNode.description ?? '', /^CA rotation: phase 2 of 3, 1 of 4 hosts done · /);
      assert.match(certsNode.tooltip ?? '', /every certificate re-issued under the new CA/);
      assert.match(certsNode.tooltip ?? '', /goes on with the 3 host\(s\) not done/);
      assert.match(contextValueOf(certsNode), /^certificates\b.*\+rotating$/);
      const broken = buildTree(loaded, {
        rotations: new Map([['edge-a', { problem: 'rotation.json: it is not JSON' }]]),
      });
      const brokenNode = walk(broken).find((n) => n.kind === 'certificates')!;
      assert.match(brokenNode.description ?? '', /^CA rotation state unusable/);
      assert.match(brokenNode.tooltip ?? '', /it is not JSON/);
      const values = walk([
        ...roots,
        ...problems,
        ...unprovisioned,
        ...noSpace,
        ...backups,
        ...rotating,
      ]).map(contextValueOf);
      const expectedKinds: Record<string, string[]> = {
        'k3sEtcd.cluster.openPanel': ['cluster'],
        'k3sEtcd.cluster.openHealth': ['cluster'],
        'k3sEtcd.host.copyAddress': ['host'],
        'k3sEtcd.problem.reveal': ['problem'],
        'k3sEtcd.inventory.open': ['cluster', 'host'],
        'k3sEtcd.certs.generate|inline@1': ['certificates'],
        'k3sEtcd.certs.generate': ['certificates', 'cluster'],
        'k3sEtcd.certs.importCa': ['certificates', 'cluster'],
        'k3sEtcd.certs.inspect': ['certificate'],
        'k3sEtcd.certs.check': ['certificates', 'cluster'],
        'k3sEtcd.certs.check|inline@2': ['certificates'],
        'k3sEtcd.certs.reissue': ['member'],
        'k3sEtcd.certs.renew|3_certificates@4': ['certificates'],
        'k3sEtcd.certs.renew|3_certificates@2': ['member'],
        'k3sEtcd.certs.rotateCa': ['certificates'],
        'k3sEtcd.provision.preview': ['cluster', 'host'],
        'k3sEtcd.provision.etcd': ['cluster', 'host'],
        'k3sEtcd.provision.etcd|inline@2': ['cluster'],
        // A member of a cluster not provisioned yet offers it inline too (its host's task).
        'k3sEtcd.provision.etcd|inline@0': ['member'],
        'k3sEtcd.member.add': ['host'],
        'k3sEtcd.member.replace': ['member'],
        'k3sEtcd.member.remove': ['member'],
        'k3sEtcd.member.fixPeerUrl': ['member'],
        'k3sEtcd.upgrade.etcd': ['cluster'],
        'k3sEtcd.k3s.install': ['cluster', 'host', 'k3sServer'],
        'k3sEtcd.k3s.preview': ['cluster', 'host', 'k3sServer'],
        'k3sEtcd.k3s.backup': ['host', 'k3sServer'],
        'k3sEtcd.k3s.restore': ['host', 'k3sServer'],
        'k3sEtcd.k3s.fetchKubeconfig': ['host', 'k3sServer'],
        'k3sEtcd.k3s.refreshState': ['cluster', 'host', 'k3sServer'],
        'k3sEtcd.migrate.sqliteToEtcd': ['cluster', 'host', 'k3sServer'],
        'k3sEtcd.migrate.etcdToSqlite': ['cluster'],
        'k3sEtcd.cluster.maintain': ['cluster'],
        'k3sEtcd.cluster.maintain|inline@2': ['cluster'],
        'k3sEtcd.cluster.scheduleMaintenance': ['cluster'],
        'k3sEtcd.snapshot.save': ['cluster'],
        'k3sEtcd.snapshot.list': ['cluster'],
        'k3sEtcd.keyspace.showKey': ['cluster'],
        'k3sEtcd.snapshot.restore': ['cluster'],
        'k3sEtcd.cluster.recover': ['cluster'],
        'k3sEtcd.monitoring.export': ['cluster'],
        'k3sEtcd.etcdctl.openTerminal': ['cluster'],
        'k3sEtcd.etcdctl.copyEnv': ['cluster'],
        'k3sEtcd.backup.install': ['cluster'],
        'k3sEtcd.backup.install|1_general@1': ['backups'],
        'k3sEtcd.backup.keygen': ['cluster'],
        'k3sEtcd.backup.keygen|1_general@2': ['backups'],
        'k3sEtcd.backup.run': ['cluster', 'backups'],
        'k3sEtcd.backup.status': ['cluster', 'backups'],
        'k3sEtcd.backup.status|inline@2': ['backups'],
        'k3sEtcd.backup.remove': ['cluster', 'backups'],
        'k3sEtcd.backup.refresh|inline@1': ['backups'],
      };
      const entries = manifest.contributes.menus['view/item/context'] ?? [];
      assert.ok(entries.length > 0);
      for (const entry of entries) {
        const re = viewItemRegex(entry.when);
        assert.ok(re, `${entry.command} has a viewItem regex`);
        const matched = new Set(
          values.filter((v) => re.test(v)).map((v) => parseContextValue(v).kind),
        );
        const expected =
          expectedKinds[`${entry.command}|${entry.group ?? ''}`] ??
          expectedKinds[entry.command] ??
          [];
        assert.deepEqual(
          [...matched].sort(),
          [...expected].sort(),
          `${entry.command} (${entry.group ?? ''})`,
        );
        // What needs a backup block is not offered on a cluster without one.
        if (/^k3sEtcd\.backup\.(run|status|remove|refresh)$/.test(entry.command))
          assert.ok(!re.test('cluster+external-etcd'), entry.command);
        // Provision etcd inline only where nothing is provisioned yet, on members as on clusters.
        if (entry.command === 'k3sEtcd.provision.etcd' && entry.group?.startsWith('inline'))
          for (const v of values.filter((x) => re.test(x)))
            assert.match(v, /\+unprovisioned\b/, `${entry.group}: ${v}`);
      }
      const memberInline = entries.filter(
        (e) =>
          e.command === 'k3sEtcd.provision.etcd' &&
          e.group?.startsWith('inline') &&
          viewItemRegex(e.when)?.test('member+unprovisioned'),
      );
      assert.equal(
        memberInline.length,
        1,
        'a member not provisioned yet offers Provision etcd inline',
      );
      assert.match(memberInline[0]!.when ?? '', /isWorkspaceTrusted/);
      for (const v of ['member', 'member+leader', 'member+unhealthy'])
        assert.ok(!viewItemRegex(memberInline[0]!.when)!.test(v), v);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
