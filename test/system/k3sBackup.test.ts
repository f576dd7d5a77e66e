/**
 * Backing up K3s's SQLite state on a real systemd host: a real SQLite database in WAL mode whose
 * newest rows are still only in the WAL (a writer keeps it open, automatic checkpoints off), and
 * K3s's token. The backup copies db, -wal, -shm and token into backups/<host>/<time>/ (0600,
 * manifest with SHA-256); the copy opens and holds every row, WAL rows included. The restore puts
 * them back with the replaced files moved aside; the token round-trips. While "K3s" runs (a unit
 * named k3s) and the host has no sqlite3, both are refused with nothing changed; once the host
 * has sqlite3, the backup goes through SQLite's online backup instead.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { backupK3s, restoreK3s, type BackupManifest } from '../../src/core/k3s/backup';
import { latestBackup } from '../../src/core/k3s/ops';
import { K3S_DB_DIR, K3S_TOKEN_FILE } from '../../src/core/k3s/server';
import type { Cluster } from '../../src/core/inventory/types';
import type { SshContext } from '../../src/core/ssh/hostSession';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import { type EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { labInventory, labSsh, loadCluster, writeKnownHosts } from '../../scripts/harness/lab';
import { captureIO } from '../fixtures/cli';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';

const ADDR = '127.0.1.121';
const TOKEN =
  'K10e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855::server:f00dfeed';

function count(db: string): number {
  const r = spawnSync('sqlite3', [db, 'SELECT count(*) FROM kine'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
}

/** A sqlite3 process holding the database open: rows after the checkpoint stay in the WAL. */
async function walWriter(db: string): Promise<ChildProcessWithoutNullStreams> {
  const p = spawn('sqlite3', [db]);
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const rows = (from: number, to: number) =>
    Array.from(
      { length: to - from + 1 },
      (_, i) =>
        `INSERT INTO kine(name, value) VALUES('/registry/k${from + i}', x'00ff${(from + i).toString(16).padStart(4, '0')}');`,
    ).join('\n');
  p.stdin.write(
    [
      'PRAGMA journal_mode=WAL;',
      'PRAGMA wal_autocheckpoint=0;',
      'CREATE TABLE kine(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, value BLOB);',
      rows(1, 60),
      'PRAGMA wal_checkpoint(TRUNCATE);',
      rows(61, 100),
      "SELECT 'ready';",
      '',
    ].join('\n'),
  );
  const until = Date.now() + 15_000;
  while (!out.includes('ready')) {
    if (Date.now() > until) throw new Error(`sqlite3 never got ready: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return p;
}

describe("K3s's SQLite state: backup and restore on a real host", () => {
  let dir = '';
  let hosts: EdgeHost[] = [];
  let writer: ChildProcessWithoutNullStreams | undefined;
  let cluster: Cluster;
  let ssh: SshContext;
  let h: EdgeHost;

  before(async () => {
    dir = await makeTempDir('k3s-etcd-backup-');
    const key = makeKey(dir, 'id_lab');
    hosts = await startEdgeHosts({
      hosts: [{ name: 'srv-1', address: ADDR }],
      authorizedKeys: [key.publicLine],
    });
    h = hosts[0]!;
    await writeKnownHosts(dir, [await hostKeyLine(h)]);
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({
        cluster: 'lab',
        hosts: [{ name: 'srv-1', address: ADDR, roles: ['etcd', 'k3s-server'] }],
        identityFile: 'id_lab',
      }),
    );
    cluster = await loadCluster(file);
    ssh = labSsh(dir);
    // K3s's state as K3s leaves it: the database (WAL mode) and the token.
    await mkdir(join(h.root, K3S_DB_DIR), { recursive: true, mode: 0o700 });
    await writeFile(join(h.root, K3S_TOKEN_FILE), `${TOKEN}\n`, { mode: 0o600 });
    writer = await walWriter(join(h.root, K3S_DB_DIR, 'state.db'));
  });
  after(async () => {
    writer?.kill('SIGKILL');
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('backs up db, WAL and token: the copy holds every row, WAL rows included; 0600 files, manifest checked', async () => {
    // The database file alone lacks the WAL rows: the WAL must come along.
    const alone = join(dir, 'alone.db');
    await cp(join(h.root, K3S_DB_DIR, 'state.db'), alone);
    assert.equal(count(alone), 60);
    assert.ok((await stat(join(h.root, K3S_DB_DIR, 'state.db-wal'))).size > 0);

    const lines: string[] = [];
    const { dir: backup, manifest } = await backupK3s(cluster, 'srv-1', {
      ssh,
      workspaceDir: dir,
      onLine: (_h, l) => lines.push(l),
    });
    assert.match(backup, /\/backups\/srv-1\/\d{8}T\d{6}Z$/);
    assert.equal(manifest.method, 'copy with K3s stopped');
    assert.deepEqual(manifest.files.map((f) => f.name).sort(), [
      'state.db',
      'state.db-shm',
      'state.db-wal',
      'token',
    ]);
    assert.equal((await stat(backup)).mode & 0o777, 0o700);
    for (const f of await readdir(backup))
      assert.equal((await stat(join(backup, f))).mode & 0o777, 0o600, f);
    const onDisk = JSON.parse(
      await readFile(join(backup, 'manifest.json'), 'utf8'),
    ) as BackupManifest;
    for (const f of onDisk.files) {
      const r = spawnSync('sha256sum', [join(backup, f.name)], { encoding: 'utf8' });
      assert.equal(r.stdout.split(' ')[0], f.sha256, f.name);
    }
    assert.equal((await readFile(join(backup, 'token'), 'utf8')).trim(), TOKEN);
    assert.doesNotMatch(lines.join('\n'), /f00dfeed/, 'the token never reaches the log');

    // Open a copy (opening a WAL database checkpoints it): every row is there.
    const copy = join(dir, 'restored-copy');
    await cp(backup, copy, { recursive: true });
    assert.equal(count(join(copy, 'state.db')), 100);
    const last = spawnSync(
      'sqlite3',
      [join(copy, 'state.db'), "SELECT hex(value) FROM kine WHERE name='/registry/k100'"],
      { encoding: 'utf8' },
    );
    assert.equal(last.stdout.trim(), '00FF0064', 'bytes verbatim');
  });

  it('restores: the replaced files are moved aside, the backup checked on the host, the token round-trips', async () => {
    writer?.stdin.end();
    await new Promise((r) => writer?.once('exit', r));
    writer = undefined;
    // Something else happened to the host since: another token, another database.
    await h.exec(
      `echo K10other::server:changed > ${K3S_TOKEN_FILE} && rm -f ${K3S_DB_DIR}/state.db-wal ${K3S_DB_DIR}/state.db-shm && echo junk > ${K3S_DB_DIR}/state.db`,
    );

    const { io, out } = captureIO(dir);
    assert.equal(await main(['k3s', 'restore', '--host', 'srv-1', '--yes'], io), 0, out.join('\n'));
    assert.equal((await h.exec(`cat ${K3S_TOKEN_FILE}`)).stdout.trim(), TOKEN);
    assert.equal(
      (await h.exec(`stat -c %a ${K3S_TOKEN_FILE} ${K3S_DB_DIR}/state.db`)).stdout.trim(),
      '600\n600',
    );
    const aside = (await h.exec(`ls ${K3S_DB_DIR} /var/lib/rancher/k3s/server`)).stdout;
    assert.match(aside, /state\.db\.before-restore-\d{8}T\d{6}Z/);
    assert.match(aside, /token\.before-restore-\d{8}T\d{6}Z/);
    const onHost = join(dir, 'from-host');
    await mkdir(onHost);
    for (const f of ['state.db', 'state.db-wal', 'state.db-shm'])
      await cp(join(h.root, K3S_DB_DIR, f), join(onHost, f));
    assert.equal(count(join(onHost, 'state.db')), 100, 'the restored database holds every row');
  });

  it('a backup folder whose manifest names another destination, or that holds a symlink, is refused: nothing is written on the host', async () => {
    const good = await latestBackup(dir, 'srv-1');
    assert.ok(good);
    const forged = join(dir, 'backups', 'srv-1', '20990101T000000Z');
    const state = `ls -A ${K3S_DB_DIR} /var/lib/rancher/k3s/server /etc; sha256sum ${K3S_DB_DIR}/* ${K3S_TOKEN_FILE}`;
    const before = (await h.exec(state)).stdout;
    try {
      // The token's bytes, as the manifest says, but bound for /etc.
      await cp(good, forged, { recursive: true });
      const m = JSON.parse(await readFile(join(forged, 'manifest.json'), 'utf8')) as BackupManifest;
      m.files = m.files.map((f) =>
        f.name === 'token' ? { ...f, path: '/etc/k3s-etcd-pwned' } : f,
      );
      await writeFile(join(forged, 'manifest.json'), JSON.stringify(m));
      let r = captureIO(dir);
      assert.equal(
        await main(['k3s', 'restore', '--host', 'srv-1', '--from', forged, '--yes'], r.io),
        1,
      );
      assert.match(
        r.out.join('\n'),
        /says token goes to "\/etc\/k3s-etcd-pwned"; token only ever goes back to \/var\/lib\/rancher\/k3s\/server\/token: it is not restored, and nothing was changed/,
      );
      // The manifest as made, but the token a symlink to a file of the same bytes elsewhere.
      await rm(forged, { recursive: true });
      await cp(good, forged, { recursive: true });
      await cp(join(forged, 'token'), join(dir, 'token-elsewhere'));
      await rm(join(forged, 'token'));
      await symlink(join(dir, 'token-elsewhere'), join(forged, 'token'));
      r = captureIO(dir);
      assert.equal(await main(['k3s', 'restore', '--host', 'srv-1', '--yes'], r.io), 1);
      assert.match(r.out.join('\n'), /holds token, which is not a regular file/);
      assert.equal((await h.exec(state)).stdout, before, 'nothing written, nothing moved aside');
    } finally {
      await rm(forged, { recursive: true, force: true });
    }
  });

  it('refuses to back up or restore under a running K3s without sqlite3; nothing changes', async () => {
    await h.exec(
      "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/k3s.service && systemctl daemon-reload && systemctl start k3s",
    );
    const before = (await h.exec(`sha256sum ${K3S_DB_DIR}/* ${K3S_TOKEN_FILE}`)).stdout;
    await assert.rejects(
      backupK3s(cluster, 'srv-1', { ssh, workspaceDir: dir }),
      /K3s is running on srv-1 and the host has no sqlite3 for an online backup: stop K3s first \(sudo systemctl stop k3s\)/,
    );
    await assert.rejects(
      restoreK3s(cluster, 'srv-1', { ssh, workspaceDir: dir }),
      /K3s is running on srv-1: stop it first \(sudo systemctl stop k3s\)\. A restore never runs under a live K3s\. Nothing was changed\./,
    );
    assert.equal((await h.exec(`sha256sum ${K3S_DB_DIR}/* ${K3S_TOKEN_FILE}`)).stdout, before);
  });

  it("while K3s runs, a host with sqlite3 is backed up with SQLite's online backup: one consistent file", async () => {
    // Debian's sqlite3 from this machine (same release as the hosts), as a person would install it.
    for (const [from, to] of [
      ['/usr/bin/sqlite3', 'usr/local/bin/sqlite3'],
      ['/lib/x86_64-linux-gnu/libsqlite3.so.0', 'usr/local/lib/libsqlite3.so.0'],
      ['/lib/x86_64-linux-gnu/libreadline.so.8', 'usr/local/lib/libreadline.so.8'],
    ] as const)
      await cp(from, join(h.root, to), { dereference: true });
    assert.equal((await h.exec('ldconfig && sqlite3 -version')).code, 0);
    assert.equal((await h.exec('systemctl is-active k3s')).stdout.trim(), 'active');
    const { dir: backup, manifest } = await backupK3s(cluster, 'srv-1', { ssh, workspaceDir: dir });
    assert.equal(manifest.method, 'sqlite3 online backup');
    assert.deepEqual(manifest.files.map((f) => f.name).sort(), ['state.db', 'token']);
    const copy = join(dir, 'online-copy.db');
    await cp(join(backup, 'state.db'), copy);
    assert.equal(count(copy), 100);
  });

  it("a state.db larger than the host's /tmp (a 1 MiB tmpfs) is backed up online and stopped, and restored: streamed, nothing staged in /tmp", async () => {
    // 1,500 more rows of 4 KiB: about 6 MB, six times the host's /tmp.
    const grow = spawnSync(
      'sqlite3',
      [
        join(h.root, K3S_DB_DIR, 'state.db'),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500) INSERT INTO kine(name, value) SELECT '/registry/big/' || x, randomblob(4096) FROM c;",
      ],
      { encoding: 'utf8' },
    );
    assert.equal(grow.status, 0, grow.stderr);
    assert.equal((await h.exec('mount -t tmpfs -o size=1m tmpfs /tmp')).code, 0);
    try {
      assert.equal((await h.exec('systemctl is-active k3s')).stdout.trim(), 'active');
      const seen: number[] = [];
      const online = await backupK3s(cluster, 'srv-1', {
        ssh,
        workspaceDir: dir,
        onProgress: (p) => seen.push(p.bytes / p.total),
      });
      assert.equal(online.manifest.method, 'sqlite3 online backup');
      const db = online.manifest.files.find((f) => f.name === 'state.db')!;
      assert.ok(db.bytes > 6_000_000, `${db.bytes} bytes`);
      assert.equal(count(join(online.dir, 'state.db')), 1600);
      assert.ok(seen.length > 1 && seen.at(-1) === 1, `progress ${seen.join(', ')}`);
      assert.equal(
        (await h.exec(`ls -A ${K3S_DB_DIR} /tmp | grep -c k3s-etcd || true`)).stdout.trim(),
        '0',
        'no staging left on the host',
      );

      await h.exec('systemctl stop k3s');
      const stopped = await backupK3s(cluster, 'srv-1', { ssh, workspaceDir: dir });
      assert.equal(stopped.manifest.method, 'copy with K3s stopped');
      const copy = join(dir, 'stopped-copy');
      await cp(stopped.dir, copy, { recursive: true });
      assert.equal(count(join(copy, 'state.db')), 1600);

      await h.exec(`echo junk > ${K3S_DB_DIR}/state.db`);
      const { io, out } = captureIO(dir);
      assert.equal(
        await main(['k3s', 'restore', '--host', 'srv-1', '--from', stopped.dir, '--yes'], io),
        0,
        out.join('\n'),
      );
      const back = join(dir, 'restored-big');
      await mkdir(back);
      for (const f of ['state.db', 'state.db-wal', 'state.db-shm'])
        await cp(join(h.root, K3S_DB_DIR, f), join(back, f)).catch(() => undefined);
      assert.equal(count(join(back, 'state.db')), 1600, 'the restored database holds every row');
    } finally {
      await h.exec('umount /tmp');
    }
  });
});
