/**
 * K3s on the external etcd, the pure parts: config.yaml (never cluster-init, an empty endpoint
 * list refused), token matching against K3s's full form, the datastore check's verdicts from
 * curl's and etcdctl's own words, and the kubeconfig rewrite.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ignoreSecretsFolder } from '../../src/core/pki/gitignore';
import { backupStamp } from '../../src/core/format/stamp';
import { verifyBackup, type BackupManifest } from '../../src/core/k3s/backup';
import { latestBackup, listBackups, rewriteKubeconfig } from '../../src/core/k3s/ops';
import { k3sRestoreConfirmation } from '../../src/core/k3s/words';
import { runCli } from '../fixtures/cli';
import { parseInventory } from '../../src/core/inventory/parse';
import type { Cluster } from '../../src/core/inventory/types';
import { parseDatastoreCheck, requireDatastore } from '../../src/core/k3s/datastoreCheck';
import { parseK3sFacts, renderK3sConfig, repointPlan } from '../../src/core/k3s/server';
import { tokenMatches } from '../../src/core/k3sHost/token';
import { renderScript } from '../../src/core/plan/render';
import { describeK3sState, parseK3sState } from '../../src/core/k3s/state';
import { buildTree, type TreeNode } from '../../src/core/tree/model';

function clusterOf(hosts: string, k3s = ''): Cluster {
  const r = parseInventory(
    `version: 1\nclusters:\n  - name: c\n${k3s}    hosts:\n${hosts}`,
    '/ws/k3s-etcd.yaml',
  );
  assert.equal(r.status, 'ok', JSON.stringify(r.status === 'ok' ? [] : r.problems));
  return (r as { inventory: { clusters: Cluster[] } }).inventory.clusters[0] as Cluster;
}

describe('K3s config.yaml', () => {
  it('names every member, the three files and the token; options as the inventory says; never cluster-init', () => {
    const c = clusterOf(
      '      - { name: a, address: 10.0.0.1, roles: [etcd, k3s-server] }\n      - { name: b, address: "fd00::2", roles: [etcd] }\n',
      '    k3s: { disable: [servicelb, traefik], writeKubeconfigMode: "0644", tlsSan: [api.example] }\n',
    );
    const text = renderK3sConfig(c, 'se"cret');
    assert.deepEqual(parse(text), {
      token: 'se"cret',
      'datastore-endpoint': 'https://10.0.0.1:2379,https://[fd00::2]:2379',
      'datastore-cafile': '/etc/rancher/k3s/etcd/ca.pem',
      'datastore-certfile': '/etc/rancher/k3s/etcd/client.pem',
      'datastore-keyfile': '/etc/rancher/k3s/etcd/client-key.pem',
      disable: ['servicelb', 'traefik'],
      'write-kubeconfig-mode': '0644',
      'tls-san': ['api.example'],
    });
    assert.doesNotMatch(text, /cluster-init/);
  });

  it('a cluster without etcd members gets a clear refusal', () => {
    const c = clusterOf('      - { name: a, address: 10.0.0.1, roles: [etcd, k3s-server] }\n');
    c.hosts[0]!.roles = ['k3s-server'];
    assert.throws(() => renderK3sConfig(c, 't'), /the datastore endpoint list would be empty/);
  });

  it('tokens match in short or full form, and only the same secret', () => {
    assert.ok(tokenMatches('abc', 'K10deadbeef::server:abc\n'));
    assert.ok(tokenMatches('K10x::server:abc', 'abc'));
    assert.ok(!tokenMatches('abc', 'K10deadbeef::server:abd'));
  });
});

describe('the datastore check from a server', () => {
  const out = (rows: [string, number, string][]) =>
    rows.map(([ep, rc, text]) => `@@k3s-etcd-check ${ep} ${rc}\n${text}\n`).join('') +
    '@@k3s-etcd-check end\n';

  it("words each failure by its cause, from curl's and etcdctl's messages", () => {
    const checks = parseDatastoreCheck(
      out([
        ['https://a:2379', 0, '{"health":"true","reason":""}'],
        [
          'https://b:2379',
          60,
          'curl: (60) SSL certificate problem: unable to get local issuer certificate',
        ],
        [
          'https://c:2379',
          60,
          "curl: (60) SSL: no alternative certificate subject name matches target host name 'c'",
        ],
        ['https://d:2379', 7, 'curl: (7) Failed to connect to d port 2379: Connection refused'],
        [
          'https://e:2379',
          56,
          'curl: (56) OpenSSL SSL_read: error:0A000418:SSL routines::tlsv1 alert unknown ca',
        ],
        ['https://f:2379', 28, 'curl: (28) Connection timed out after 5001 milliseconds'],
        [
          'https://g:2379',
          1,
          'https://g:2379 is unhealthy: x509: certificate signed by unknown authority',
        ],
      ]),
    );
    assert.deepEqual(
      checks.map((c) => [c.endpoint, c.ok, c.problem?.split(':')[0]]),
      [
        ['https://a:2379', true, undefined],
        ['https://b:2379', false, 'TLS unknown authority'],
        ['https://c:2379', false, 'SAN mismatch'],
        ['https://d:2379', false, 'connection refused by https'],
        ['https://e:2379', false, 'client certificate rejected by https'],
        ['https://f:2379', false, 'no answer from https'],
        ['https://g:2379', false, 'TLS unknown authority'],
      ],
    );
    assert.equal(requireDatastore('s', checks).length, 6, 'one member answered: warnings only');
    assert.throws(
      () => requireDatastore('s', checks.slice(1, 2)),
      /s cannot use the datastore with these files, so K3s was not installed or restarted: TLS unknown authority/,
    );
  });
});

describe('kubeconfig', () => {
  it('points at the host and names things after the cluster', () => {
    const text = rewriteKubeconfig(
      'apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\nusers:\n- name: default\n  user: {}\n',
      'lab',
      'fd00::1',
    );
    const kc = parse(text) as Record<string, unknown>;
    assert.deepEqual(kc['clusters'], [
      { cluster: { server: 'https://[fd00::1]:6443' }, name: 'lab' },
    ]);
    assert.deepEqual(kc['contexts'], [{ context: { cluster: 'lab', user: 'lab' }, name: 'lab' }]);
    assert.equal(kc['current-context'], 'lab');
  });
});

describe('secrets folders', () => {
  it('backups/ is git-ignored in a git checkout, once; elsewhere nothing is written', async () => {
    const root = await mkdtemp(join(tmpdir(), 'k3s-etcd-ign-'));
    try {
      assert.equal(await ignoreSecretsFolder(root, 'backups'), false);
      await assert.rejects(readFile(join(root, '.gitignore')));
      await mkdir(join(root, '.git'));
      assert.equal(await ignoreSecretsFolder(root, 'backups'), true);
      assert.equal(await ignoreSecretsFolder(root, 'backups'), false);
      assert.match(await readFile(join(root, '.gitignore'), 'utf8'), /^backups\/$/m);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('backup folders are named by UTC time, sortable and without colons', () => {
    assert.equal(backupStamp(new Date('2026-11-24T23:05:45.123Z')), '20261124T230545Z');
  });
});

describe('K3s server state in the tree', () => {
  it('reads version, node status and endpoint, and shows them on the K3s server node', () => {
    const state = parseK3sState(
      'installed=yes\nversion=v1.31.4+k3s1\nnode=Ready\nendpoint=https://a:2379,https://b:2379,https://c:2379\n',
      new Date('2026-11-24T10:00:00Z'),
    );
    assert.equal(describeK3sState(state), 'v1.31.4+k3s1 · Ready · etcd ×3');
    assert.equal(
      describeK3sState(parseK3sState('installed=no\nversion=\nnode=\nendpoint=\n')),
      'not installed',
    );
    assert.equal(
      describeK3sState(parseK3sState('installed=yes\nversion=v1.30.1+k3s1\nnode=\nendpoint=\n')),
      'v1.30.1+k3s1 · API not answering · SQLite or embedded etcd',
    );
    const r = parseInventory(
      'version: 1\nclusters:\n  - name: c\n    hosts:\n      - { name: a, address: 10.0.0.1, roles: [etcd, k3s-server] }\n',
      '/ws/k3s-etcd.yaml',
    );
    const roots = buildTree(r, { k3s: new Map([['c/a', state]]) });
    const walk = (n: TreeNode[]): TreeNode[] => n.flatMap((x) => [x, ...walk(x.children ?? [])]);
    const server = walk(roots).find((n) => n.kind === 'role' && n.label === 'K3s server');
    assert.equal(server?.description, 'v1.31.4+k3s1 · Ready · etcd ×3');
    assert.match(
      String(server?.tooltip),
      /datastore-endpoint https:\/\/a:2379,https:\/\/b:2379,https:\/\/c:2379/,
    );
  });
});

describe('the host name a K3s server prints is input', () => {
  const c = clusterOf('      - { name: srv-1, address: 10.0.0.1, roles: [etcd, k3s-server] }\n');
  const h = c.hosts[0]!;
  it('a hostname with a backtick or $(...) never reaches a script; a plain one names the node', () => {
    for (const bad of ['srv`touch /tmp/pwned`', 'srv$(touch /tmp/pwned)', 'srv"; touch /tmp/x; "'])
      assert.throws(
        () => repointPlan(h, parseK3sFacts(`hostname=${bad}\n`), Buffer.from('x\n')),
        /srv-1 calls itself .* \(hostname\), which is not a host name K3s can register as a node .*hostnamectl set-hostname NAME\)\. Nothing was run\./,
        bad,
      );
    const plan = repointPlan(h, parseK3sFacts('hostname=srv-1.lan\n'), Buffer.from('x\n'));
    assert.match(renderScript(plan), /node srv-1\.lan did not become Ready/);
    // No hostname at all: the inventory name.
    assert.match(
      renderScript(repointPlan(h, parseK3sFacts(''), Buffer.from('x\n'))),
      /node srv-1 is Ready/,
    );
  });
});

describe('a K3s backup folder is checked before it is trusted', () => {
  const sha = (b: string) => createHash('sha256').update(b).digest('hex');
  const files = { 'state.db': 'SQLite format 3\0 rows', token: 'K10abc::server:secret\n' };
  const manifest = (over: Partial<BackupManifest> = {}): BackupManifest => ({
    cluster: 'c',
    host: 'srv-1',
    createdAt: '2025-01-01T00:00:00.000Z',
    method: 'copy with K3s stopped',
    files: [
      {
        name: 'state.db',
        path: '/var/lib/rancher/k3s/server/db/state.db',
        sha256: sha(files['state.db']),
        bytes: files['state.db'].length,
      },
      {
        name: 'token',
        path: '/var/lib/rancher/k3s/server/token',
        sha256: sha(files.token),
        bytes: files.token.length,
      },
    ],
    ...over,
  });
  async function backup(
    ws: string,
    stamp: string,
    m: BackupManifest,
    host = 'srv-1',
  ): Promise<string> {
    const dir = join(ws, 'backups', host, stamp);
    await mkdir(dir, { recursive: true });
    for (const [n, b] of Object.entries(files)) await writeFile(join(dir, n), b);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
    return dir;
  }

  it('takes a backup made by k3s backup; refuses destinations, names and folders it did not make', async () => {
    const ws = await mkdtemp(join(tmpdir(), 'k3s-etcd-backup-unit-'));
    try {
      const good = await backup(ws, '20250101T000000Z', manifest());
      assert.deepEqual(
        (await verifyBackup(good, 'srv-1')).files.map((f) => f.path),
        ['/var/lib/rancher/k3s/server/db/state.db', '/var/lib/rancher/k3s/server/token'],
      );
      const refusals: Array<[() => Promise<unknown>, RegExp]> = [];
      // The manifest names another destination for a file whose bytes match it.
      const [db, token] = manifest().files;
      const elsewhere = await backup(
        ws,
        '20250102T000000Z',
        manifest({ files: [db!, { ...token!, path: '/etc/cron.d/k3s' }] }),
      );
      refusals.push([
        () => verifyBackup(elsewhere),
        /says token goes to "\/etc\/cron\.d\/k3s"; token only ever goes back to \/var\/lib\/rancher\/k3s\/server\/token/,
      ]);
      // A name that is a path.
      const traversal = await backup(
        ws,
        '20250103T000000Z',
        manifest({ files: [db!, { ...token!, name: '../token' }] }),
      );
      refusals.push([
        () => verifyBackup(traversal),
        /lists "\.\.\/token", which is not one of state\.db, state\.db-wal, state\.db-shm, token/,
      ]);
      // A listed file that is a symlink to a file of the right bytes elsewhere.
      const linked = await backup(ws, '20250104T000000Z', manifest());
      await writeFile(join(ws, 'outside'), files.token);
      await rm(join(linked, 'token'));
      await symlink(join(ws, 'outside'), join(linked, 'token'));
      refusals.push([() => verifyBackup(linked), /holds token, which is not a regular file/]);
      // A file the manifest does not list.
      const extra = await backup(ws, '20250105T000000Z', manifest());
      await writeFile(join(extra, 'state.db-wal'), 'x');
      refusals.push([
        () => verifyBackup(extra),
        /holds "state\.db-wal", which its manifest does not list/,
      ]);
      // Not in backups/<host>/<UTC time>/, or another host's.
      const loose = join(ws, 'loose');
      await mkdir(loose);
      await writeFile(join(loose, 'manifest.json'), JSON.stringify(manifest()));
      refusals.push([
        () => verifyBackup(loose),
        /is not a backup folder of k3s-etcd \(backups\/<host>\/<UTC time>\/, as k3s backup makes them\)/,
      ]);
      refusals.push([() => verifyBackup(good, 'srv-2'), /is a backup of srv-1, not of srv-2/]);
      const other = await backup(ws, '20250106T000000Z', manifest(), 'srv-2');
      refusals.push([() => verifyBackup(other), /it is a backup of "srv-1", not of srv-2/]);
      // Bytes changed since.
      const changed = await backup(ws, '20250107T000000Z', manifest());
      await writeFile(join(changed, 'state.db'), 'SQLite format 3\0 rowz');
      refusals.push([
        () => verifyBackup(changed),
        /state\.db does not match its size and SHA-256 in the manifest/,
      ]);
      for (const [p, re] of refusals) await assert.rejects(p(), re);
      // The newest folder named as a backup is the latest, whatever else lies there.
      await mkdir(join(ws, 'backups', 'srv-1', 'zzz-not-a-backup'));
      await writeFile(join(ws, 'backups', 'srv-1', 'zzz-not-a-backup', 'manifest.json'), '{}');
      assert.equal(await latestBackup(ws, 'srv-1'), changed);
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  });

  it('k3s restore asks with the words Restore K3s State… shows, before anything connects', async () => {
    const ws = await mkdtemp(join(tmpdir(), 'k3s-etcd-backup-unit-'));
    try {
      await writeFile(
        join(ws, 'k3s-etcd.yaml'),
        [
          'version: 1',
          'clusters:',
          '  - name: c',
          '    hosts:',
          '      - { name: e1, address: 10.0.0.1, roles: [etcd] }',
          '      - { name: srv-1, address: 10.0.0.2, roles: [k3s-server] }',
          '',
        ].join('\n'),
      );
      const dir = await backup(ws, '20250101T000000Z', manifest());
      const r = await runCli(['k3s', 'restore', '--host', 'srv-1'], {
        cwd: ws,
        interactive: true,
        answer: 'n',
      });
      assert.equal(r.code, 1, r.err);
      const lines = r.out.split('\n');
      assert.match(
        lines[0]!,
        /^copy with K3s stopped, 2025-01-0[12] \d\d:\d\d:\d\d .+\. Files written \(0600\):$/,
      );
      assert.deepEqual(lines.slice(1), [
        `  /var/lib/rancher/k3s/server/db/state.db (${files['state.db'].length} bytes)`,
        `  /var/lib/rancher/k3s/server/token (${files.token.length} bytes)`,
        'K3s must be stopped on the host. The files replaced are moved aside (*.before-restore-<time>), not deleted.',
      ]);
      assert.ok(r.err.startsWith(`Restore srv-1's K3s state from ${dir}? [y/N]`), r.err);
      assert.match(r.err, /Nothing changed\./);
      // The editor's modal: the same words, the backup named by its folder's time.
      const w = k3sRestoreConfirmation('srv-1', '20250101T000000Z', manifest(), () => 'then');
      assert.equal(w.question, "Restore srv-1's K3s state from 20250101T000000Z?");
      assert.equal(w.backup, 'copy with K3s stopped, then. Files written (0600):');
      assert.equal(w.note, lines.at(-1));
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  });

  it('lists the backups of one host newest first, as the CLI and both editor picks offer them', async () => {
    const ws = await mkdtemp(join(tmpdir(), 'k3s-etcd-backup-unit-'));
    try {
      assert.deepEqual(await listBackups(ws, 'srv-1'), [], 'no backups folder yet');
      const older = await backup(ws, '20250101T000000Z', manifest());
      const newer = await backup(ws, '20250103T000000Z', manifest());
      await backup(ws, '20250104T000000Z', manifest(), 'srv-2');
      // Not ours: a folder not named as a backup, a stamp whose manifest never got written.
      await mkdir(join(ws, 'backups', 'srv-1', 'zzz-not-a-backup'));
      await writeFile(join(ws, 'backups', 'srv-1', 'zzz-not-a-backup', 'manifest.json'), '{}');
      await mkdir(join(ws, 'backups', 'srv-1', '20250105T000000Z'));
      assert.deepEqual(await listBackups(ws, 'srv-1'), [
        { stamp: '20250103T000000Z', dir: newer },
        { stamp: '20250101T000000Z', dir: older },
      ]);
      assert.equal(await latestBackup(ws, 'srv-1'), newer);
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  });
});
