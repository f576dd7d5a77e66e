/**
 * Backups in the editor, the pure parts: the tree's Backups node (never read, fresh, not fresh,
 * aged since the read, no backup block), the status page's Markdown (host text escaped), and the
 * key pair written outside the workspace only.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isInside, writeBackupKeyPair } from '../../src/core/backup/keygen';
import { parseRecipients } from '../../src/core/backup/crypto';
import {
  backupSummary,
  judge,
  parseListing,
  type BackupEntry,
  type BackupStatus,
} from '../../src/core/backup/status';
import { backupStatusMarkdown } from '../../src/core/backup/statusMarkdown';
import { parseInventory } from '../../src/core/inventory/parse';
import type { Cluster } from '../../src/core/inventory/types';
import { backupsNode } from '../../src/core/tree/backups';
import { buildTree, contextValueOf, type TreeNode } from '../../src/core/tree/model';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');

/** The example inventory, with a backup block under its cluster when `backup` is given. */
function exampleWithBackup(backup = true) {
  const text = readFileSync(EXAMPLE, 'utf8').replace(
    /^(    pki: .*)$/m,
    backup
      ? [
          '$1',
          '    backup:',
          '      interval: 1h',
          '      encryption: { recipientsFile: backup-recipients.pem }',
          '      hosts: [edge-1, edge-2]',
          '      destinations:',
          '        - { host: edge-3, path: /var/backups/k3s-etcd }',
        ].join('\n')
      : '$1',
  );
  const loaded = parseInventory(text, '/w/k3s-etcd.yaml');
  assert.equal(loaded.status, 'ok', JSON.stringify(loaded.problems));
  return loaded;
}

const clusterOf = (loaded: ReturnType<typeof exampleWithBackup>): Cluster =>
  (loaded as { inventory: { clusters: Cluster[] } }).inventory.clusters[0]!;

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);

function entry(takenAt: number, extra: Partial<BackupEntry> = {}): BackupEntry {
  const stamp = new Date(takenAt).toISOString().replace(/\.\d+Z$/, 'Z');
  return {
    format: 'k3s-etcd-backup/1',
    cluster: 'edge-a',
    host: 'edge-1',
    member: 'edge-1',
    takenAt: stamp,
    revision: 4711,
    keys: 120,
    size: 2_500_000,
    sha256: 'a'.repeat(64),
    file: `edge-a-${stamp.replace(/[-:]/g, '')}.db.gz.enc`,
    encryptedSize: 800_000,
    encryptedSha256: 'b'.repeat(64),
    recipients: [],
    on: 'edge-1',
    copies: [{ to: 'edge-3:/var/backups/k3s-etcd', ok: true }],
    ...extra,
  };
}

function status(
  backups: BackupEntry[],
  problems: string[] = [],
  warnings: string[] = [],
): BackupStatus {
  return {
    cluster: 'edge-a',
    interval: '1h',
    backups,
    hosts: [
      {
        host: 'edge-1',
        lastRun: {
          host: 'edge-1',
          startedAt: '2026-11-24T11:20:00Z',
          finishedAt: '2026-11-24T11:20:05Z',
          result: 'done',
          summary: 'saved revision 4711',
        },
      },
      { host: 'edge-2' },
    ],
    ...(backups[0] ? { newest: backups[0] } : {}),
    problems,
    warnings,
  };
}

describe('the Backups node', () => {
  it('is not there for a cluster without a backup block', () => {
    const loaded = exampleWithBackup(false);
    assert.equal(backupsNode(clusterOf(loaded), undefined), undefined);
    const kinds = (buildTree(loaded)[0]!.children ?? []).map((n) => n.kind);
    assert.ok(!kinds.includes('backups'), kinds.join());
    assert.equal(contextValueOf(buildTree(loaded)[0]!), 'cluster+external-etcd');
  });

  it('says "not read yet" until a status was read, after Certificates, and flags its cluster', () => {
    const loaded = exampleWithBackup();
    const cluster = buildTree(loaded)[0]!;
    assert.equal(contextValueOf(cluster), 'cluster+external-etcd+backup');
    const last = cluster.children!.at(-1)!;
    assert.equal(last.kind, 'backups');
    assert.equal(last.label, 'Backups');
    assert.equal(last.description, 'not read yet');
    assert.equal(contextValueOf(last), 'backups');
    assert.match(last.tooltip ?? '', /Every 1h .* 1 destination\(s\)/);
    assert.match(last.tooltip ?? '', /Not read yet: Refresh/);
  });

  it("fresh: the newest backup's age, revision, keys and copies", () => {
    const cluster = clusterOf(exampleWithBackup());
    const node = backupsNode(
      cluster,
      { at: NOW, result: status([entry(NOW - 40 * 60_000), entry(NOW - 100 * 60_000)]) },
      NOW,
    )!;
    assert.equal(node.state, 'fresh');
    assert.equal(node.description, 'fresh · newest 40 min ago');
    assert.equal(contextValueOf(node as TreeNode), 'backups');
    assert.match(node.tooltip ?? '', /revision 4711, 120 keys, 2\.5 MB/);
    assert.match(node.tooltip ?? '', /copies: edge-3:\/var\/backups\/k3s-etcd$/m);
    assert.match(node.tooltip ?? '', /2 backup\(s\)/);
  });

  it('not fresh: the first problem in the row (warning), every problem in the tooltip', () => {
    const cluster = clusterOf(exampleWithBackup());
    const problems = [
      'the newest backup (edge-a-20261122T100000Z.db.gz.enc, on edge-1) is 2 days old: more than twice the interval (1h); is the timer running? (systemctl status k3s-etcd-backup.timer)',
      'the last drill (x, y) failed: key count 3 != 120',
    ];
    const node = backupsNode(
      cluster,
      {
        at: NOW,
        result: status(
          [entry(NOW - 50 * HOUR, { copies: [{ to: 's3 etcd/edge-a/', ok: false }] })],
          problems,
        ),
      },
      NOW,
    )!;
    assert.equal(node.state, 'stale');
    assert.equal(contextValueOf(node as TreeNode), 'backups+warning');
    assert.ok(node.description!.length <= 70, node.description);
    assert.match(node.description!, /^the newest backup \(edge-a-20261122T100000Z/);
    for (const p of problems) assert.ok(node.tooltip!.includes(`  - ${p}`), p);
    assert.match(node.tooltip!, /copies: s3 etcd\/edge-a\/ \(FAILED\)/);
  });

  it("the timer's certificate warnings: read from last-run.json as hostile text, in the row and the tooltip, the node marked", () => {
    const w =
      'certificate /etc/etcd/pki/server.pem on edge-1 ends Dec 20 10:00:00 2026 GMT: within 30 days; renew it (k3s-etcd certs renew)';
    const listing = parseListing(
      [
        '== last-run.json',
        JSON.stringify({
          v: 1,
          host: 'edge-1',
          startedAt: '2026-12-07T01:00:00Z',
          finishedAt: '2026-12-07T01:00:03Z',
          result: 'skipped',
          summary: "this host's member does not lead",
          lines: [],
          certWarnings: [w, 'bell\u0007 and\nnewline', 42, { x: 1 }],
        }),
      ].join('\n'),
    );
    assert.deepEqual(listing.lastRun?.certWarnings, [w, 'bell  and newline']);
    const cluster = clusterOf(exampleWithBackup());
    const judgedStatus = judge(cluster, [{ host: 'edge-1', listing }], NOW);
    assert.deepEqual(judgedStatus.warnings, [w, 'bell  and newline']);
    const node = backupsNode(
      cluster,
      { at: NOW, result: status([entry(NOW - 40 * 60_000)], [], [w]) },
      NOW,
    )!;
    assert.equal(node.state, 'fresh');
    assert.equal(node.description, 'fresh · newest 40 min ago · 1 certificate warning');
    assert.equal(contextValueOf(node as TreeNode), 'backups+warning');
    assert.ok(node.tooltip!.includes(`Warned by the timer:\n  - ${w}`));
    // An older last-run.json without the field: no warning, nothing marked.
    const plain = parseListing(
      '== last-run.json\n{"v":1,"host":"edge-1","startedAt":"a","finishedAt":"b","result":"done","summary":"s","lines":[]}',
    );
    assert.equal(plain.lastRun?.certWarnings, undefined);
    assert.deepEqual(judge(cluster, [{ host: 'edge-1', listing: plain }], NOW).warnings, []);
  });

  it('none yet, or the hosts not read: said as the problem', () => {
    const cluster = clusterOf(exampleWithBackup());
    const none = backupsNode(
      cluster,
      { at: NOW, result: status([], ['no backup yet on edge-1, edge-2']) },
      NOW,
    )!;
    assert.equal(none.description, 'no backup yet on edge-1, edge-2');
    const failed = backupsNode(cluster, { at: NOW, error: 'edge-1: connection refused' }, NOW)!;
    assert.equal(failed.state, 'stale');
    assert.equal(failed.description, 'edge-1: connection refused');
  });

  it('fresh when read, aged since: no longer fresh (the tree is redrawn long after a read)', () => {
    const cluster = clusterOf(exampleWithBackup());
    const read = { at: NOW, result: status([entry(NOW - 30 * 60_000)]) };
    assert.equal(backupsNode(cluster, read, NOW)!.state, 'fresh');
    const later = backupsNode(cluster, read, NOW + 3 * HOUR)!;
    assert.equal(later.state, 'stale');
    assert.equal(
      later.description,
      'the newest backup is 4 h old: more than twice the interval (1h)',
    );
  });

  it('while a read runs: "reading the hosts…", before what the previous read found', () => {
    const cluster = clusterOf(exampleWithBackup());
    const first = backupsNode(cluster, { at: NOW, reading: true }, NOW)!;
    assert.equal(first.state, 'unread');
    assert.equal(first.description, 'reading the hosts…');
    assert.match(first.tooltip ?? '', /^Reading the backup hosts now, over SSH…\nEvery 1h/);
    const again = backupsNode(
      cluster,
      { at: NOW, result: status([entry(NOW - 40 * 60_000)]), reading: true },
      NOW,
    )!;
    assert.equal(again.state, 'fresh');
    assert.equal(again.description, 'reading… · fresh · newest 40 min ago');
    const failedBefore = backupsNode(cluster, { at: NOW, error: 'no route', reading: true }, NOW)!;
    assert.equal(failedBefore.state, 'stale');
    assert.equal(failedBefore.description, 'reading… · no route');
  });

  it('buildTree passes the read state by cluster name', () => {
    const loaded = exampleWithBackup();
    const roots = buildTree(loaded, {
      backups: new Map([['edge-a', { at: Date.now(), result: status([entry(Date.now())]) }]]),
    });
    const node = roots[0]!.children!.find((n) => n.kind === 'backups')!;
    assert.equal(node.description, 'fresh · newest 0 min ago');
  });
});

describe('the backup status page', () => {
  it('lists each backup and the problems; what the hosts wrote cannot break out of a cell', () => {
    const s = status(
      [
        entry(NOW - HOUR, {
          copies: [{ to: 'evil | <img src=x>', ok: false }],
          drill: { at: '2026-11-24T11:30:00Z', file: 'f', ok: false, detail: 'x' },
        }),
      ],
      ['the last backup run on edge-1 failed: *boom* <b>'],
    );
    s.hosts[0]!.lastRun!.summary = 'ok | </td>';
    const md = backupStatusMarkdown(s, NOW);
    assert.match(md, /^# Backups of edge-a$/m);
    assert.match(md, /\*\*Not fresh\*\*/);
    assert.match(md, /^- the last backup run on edge-1 failed: \\\*boom\\\* &lt;b&gt;$/m);
    const row = md.split('\n').find((l) => l.includes('4711'))!;
    // 8 columns: 9 unescaped pipes.
    assert.equal(row.replace(/\\\|/g, '').split('|').length - 1, 9, row);
    assert.match(row, /FAILED evil \\\| &lt;img src=x&gt;/);
    assert.match(row, /\| 120 \| 2\.5 MB \|/);
    assert.match(row, /FAILED 2026-11-24/);
    assert.match(md, /\| edge-1 \| .* \| done \| ok \\\| &lt;\/td&gt; \|/);
    assert.match(md, /\| edge-2 \| — \| no run yet \|/);
    assert.doesNotMatch(md, /<img|<b>|<\/td>/);
  });

  it('fresh and empty say so', () => {
    assert.match(backupStatusMarkdown(status([entry(NOW)]), NOW), /\*\*Fresh\*\*/);
    assert.match(backupStatusMarkdown(status([], ['none']), NOW), /None yet: "Run Backup Now"/);
  });
});

describe('backup status --json', () => {
  it('says a backup is encrypted from its record: a passphrase wrapped for a recipient, whose fingerprint it lists', () => {
    const fp = 'c'.repeat(64);
    const wrapped = entry(NOW, { recipients: [{ fingerprint: fp, key: 'd'.repeat(344) }] });
    const j = backupSummary(wrapped);
    assert.equal(j.encrypted, true);
    assert.deepEqual(j.recipients, [fp]);
    assert.doesNotMatch(JSON.stringify(j), /d{344}/, 'the wrapped keys stay out of the listing');
    // A record that wraps the passphrase for no one is not called encrypted.
    const bare = backupSummary(entry(NOW, { recipients: [] }));
    assert.equal(bare.encrypted, false);
    assert.deepEqual(bare.recipients, []);
  });
});

describe('the backup key pair', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-keygen-'));
    await mkdir(join(dir, 'work'));
    await mkdir(join(dir, 'home'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('refuses a private key inside the workspace, through a symbolic link too', async () => {
    await symlink(join(dir, 'work'), join(dir, 'home', 'link'));
    const recipientsFile = join(dir, 'work', 'backup-recipients.pem');
    for (const privateKeyFile of [
      join(dir, 'work', 'backup.key'),
      join(dir, 'work', 'sub', 'deeper', 'backup.key'),
      join(dir, 'home', 'link', 'backup.key'),
      join(dir, 'home', '..', 'work', 'backup.key'),
    ])
      await assert.rejects(
        writeBackupKeyPair({ privateKeyFile, recipientsFile, workspaceDir: join(dir, 'work') }),
        /inside the workspace .* the private key must live elsewhere/,
        privateKeyFile,
      );
    await assert.rejects(stat(recipientsFile), /ENOENT/);
    assert.equal(await isInside(join(dir, 'workshop', 'k'), join(dir, 'work')), false);
  });

  it('writes the private key 0600 outside, appends the public key, never replaces a key', async () => {
    const recipientsFile = join(dir, 'work', 'backup-recipients.pem');
    await writeFile(recipientsFile, '');
    const privateKeyFile = join(dir, 'home', 'keys', 'backup-edge-a.key');
    const w = await writeBackupKeyPair({
      privateKeyFile,
      recipientsFile,
      workspaceDir: join(dir, 'work'),
    });
    assert.equal((await stat(privateKeyFile)).mode & 0o777, 0o600);
    assert.match(await readFile(privateKeyFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    const recipients = parseRecipients(await readFile(recipientsFile, 'utf8'), recipientsFile);
    assert.deepEqual(
      recipients.map((r) => [r.fingerprint, r.bits]),
      [[w.fingerprint, 4096]],
    );
    await assert.rejects(
      writeBackupKeyPair({ privateKeyFile, recipientsFile, workspaceDir: join(dir, 'work') }),
      /exists: choose another file/,
    );
    assert.equal(parseRecipients(await readFile(recipientsFile, 'utf8'), recipientsFile).length, 1);
  });
});
