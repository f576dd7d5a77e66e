/**
 * Reading K3s's SQLite state for the migration, on real SQLite databases shaped as kine writes
 * them (test/support/kineFixture.ts): kine's latest-row selection over creates, updates,
 * deletes, re-creates, gap rows and compaction, in both schema generations; rows still only in
 * the WAL; the preflight's figures; the token check against a bootstrap key sealed the way K3s
 * seals it.
 */
import assert from 'node:assert/strict';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkToken } from '../../src/core/migrate/bootstrap';
import { latestRows, openKine, pairsHash, preflight } from '../../src/core/migrate/kine';
import {
  KineLog,
  k8sProto,
  kineDdl,
  sealBootstrap,
  sqlite,
  walWriter,
  type NameType,
} from '../support/kineFixture';
import { makeTempDir, removeTempDir } from '../support/processes';

const TOKEN = 'K10c0ffee::server:migrate-me';

/** A small cluster's history: every kind of row kine writes. */
function history(log: KineLog): KineLog {
  const json = (o: unknown) => Buffer.from(JSON.stringify(o));
  log.create('/registry/health', json({ health: 'true' }));
  log.create('compact_rev_key', new Uint8Array());
  for (let i = 0; i < 20; i++) log.create(`/registry/pods/default/p${i}`, k8sProto(i));
  for (let i = 0; i < 20; i += 2) log.update(`/registry/pods/default/p${i}`, k8sProto(i + 100));
  for (let i = 0; i < 20; i += 5) log.delete(`/registry/pods/default/p${i}`);
  log.create('/registry/pods/default/p0', k8sProto(7)); // re-created after a delete
  log.gap().gap();
  log.create('/registry/configmaps/kube-system/cfg', json({ data: { a: 'b' } }));
  log.create('/registry/secrets/default/s', Buffer.from('k8s:enc:aescbc:v1:key1:abc'));
  log.create('/registry/configmaps/default/empty', new Uint8Array());
  log.create('/registry/events/default/e1', json({ reason: 'Started' }), 3600);
  log.create('/registry/masterleases/10.0.0.1', k8sProto(1), 15);
  for (let i = 0; i < 30; i++) log.update('/registry/masterleases/10.0.0.1', k8sProto(i), 15);
  log.create('/registry/leases/kube-node-lease/n1', k8sProto(2));
  for (let i = 0; i < 30; i++) log.update('/registry/leases/kube-node-lease/n1', k8sProto(i));
  log.compact();
  log.create('/registry/configmaps/default/big', Buffer.alloc(600 * 1024, 0x61));
  log.create('123', json({ numeric: true })); // a numeric-looking name
  const b = sealBootstrap(TOKEN, JSON.stringify({ ServerCA: { Content: 'x' } }));
  log.create(b.key, b.value);
  return log;
}

describe("K3s's SQLite state, read for the migration", () => {
  let dir = '';
  before(async () => {
    dir = await makeTempDir('k3s-etcd-kine-');
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  for (const nameType of ['TEXT', 'INTEGER'] as NameType[]) {
    it(`selects kine's latest live row per key, without internal rows (name ${nameType})`, async () => {
      const db = join(dir, `state-${nameType}.db`);
      const log = history(new KineLog());
      sqlite(db, `PRAGMA journal_mode=WAL;\n${kineDdl(nameType)}\n${log.take()}`);
      const src = await openKine(db);
      try {
        assert.equal(src.nameType, nameType);
        const rows = latestRows(src);
        const expected = log.live();
        assert.deepEqual(rows.map((r) => r.name).sort(), [...expected.keys()].sort());
        for (const r of rows) {
          const e = expected.get(r.name)!;
          assert.ok(Buffer.from(r.value).equals(Buffer.from(e.value)), `${r.name} byte for byte`);
          assert.equal(r.lease, e.lease, `${r.name} TTL`);
        }
        assert.ok(
          rows.some((r) => r.name === '123'),
          'numeric-looking names read as text',
        );
        assert.ok(!rows.some((r) => /^(compact_rev_key|\/registry\/health|gap-)/.test(r.name)));
        const ids = rows.map((r) => r.id);
        assert.deepEqual(
          ids,
          [...ids].sort((a, b) => a - b),
          'in revision order',
        );

        const pre = preflight(src, rows, 512 * 1024);
        assert.equal(pre.integrity, 'ok');
        assert.equal(pre.currentRevision, log.revision);
        assert.ok(pre.compactRevision > 0 && pre.compactRevision < log.revision);
        assert.equal(pre.liveKeys, expected.size);
        assert.deepEqual(pre.leases, { '15': 1, '3600': 1 });
        assert.equal(pre.byKind.encrypted, 1);
        assert.equal(pre.byKind.empty, 1);
        assert.equal(pre.largest?.key, '/registry/configmaps/default/big');
        assert.deepEqual(
          pre.tooLarge.map((t) => t.key),
          ['/registry/configmaps/default/big'],
        );
        assert.equal(pre.byPrefix['/registry/pods'], 17);
        assert.equal(
          pre.sha256,
          pairsHash([...expected].map(([key, v]) => ({ key, value: v.value }))),
        );
      } finally {
        src.close();
      }
    });
  }

  it('reads rows that are still only in the WAL', async () => {
    const db = join(dir, 'wal.db');
    const log = new KineLog();
    log.create('/registry/a/one', Buffer.from('1'));
    sqlite(db, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}\n${log.take()}`);
    for (let i = 0; i < 50; i++) log.create(`/registry/a/wal-${i}`, k8sProto(i));
    log.update('/registry/a/one', Buffer.from('2'));
    const writer = await walWriter(db, log.take());
    try {
      const alone = join(dir, 'alone.db');
      await copyFile(db, alone);
      const without = await openKine(alone);
      assert.equal(latestRows(without).length, 1, 'the database file alone lacks the WAL rows');
      without.close();

      const src = await openKine(db);
      try {
        assert.ok(src.walFrames > 0);
        const rows = latestRows(src);
        assert.equal(rows.length, 51);
        assert.equal(
          Buffer.from(rows.find((r) => r.name === '/registry/a/one')!.value).toString(),
          '2',
        );
      } finally {
        src.close();
      }
    } finally {
      writer.stdin.end();
      await new Promise((r) => writer.once('exit', r));
    }
  });

  it('a file that is not kine state is refused with what it is', async () => {
    const other = join(dir, 'other.db');
    sqlite(other, 'CREATE TABLE t(x);');
    await assert.rejects(openKine(other), /has no kine table: not K3s's SQLite state/);
    const junk = join(dir, 'junk.db');
    await writeFile(junk, 'not a database at all, just text '.repeat(200));
    await assert.rejects(openKine(junk), /is not a readable SQLite database/);
  });

  it('the token: the right one decrypts the bootstrap key; another is refused before anything is written', async () => {
    const db = join(dir, 'state-TEXT.db');
    const src = await openKine(db);
    try {
      const rows = latestRows(src);
      const ok = checkToken(rows, TOKEN);
      assert.equal(ok.found, true);
      assert.equal(checkToken(rows, 'migrate-me').found, true, 'the short form works too');
      assert.throws(
        () => checkToken(rows, 'K10c0ffee::server:another'),
        /was sealed with another token than the one given .* K3s would refuse to start \("bootstrap data already found and encrypted with different token"\)/,
      );
      const none = checkToken(
        rows.filter((r) => !r.name.startsWith('/bootstrap/')),
        'whatever',
      );
      assert.equal(none.found, false);
      assert.match(none.note, /K3s writes \/bootstrap\/[0-9a-f]{12} from the certificates/);
    } finally {
      src.close();
    }
  });
});
