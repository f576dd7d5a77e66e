/**
 * Reading K3s's SQLite state for the migration, on real SQLite databases shaped as kine writes
 * them (test/support/kineFixture.ts): kine's latest-row selection over creates, updates,
 * deletes, re-creates, gap rows and compaction, in both schema generations; rows still only in
 * the WAL; the preflight's figures; the token check against a bootstrap key sealed the way K3s
 * seals it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { adminTls, healthyClient } from '../../src/core/etcd/connection';
import type { Cluster } from '../../src/core/inventory/types';
import { clientEndpoints } from '../../src/core/inventory/select';
import { checkToken } from '../../src/core/migrate/bootstrap';
import { migrateToEtcd, readSource, requireRoom } from '../../src/core/migrate/migrate';
import { latestRows, openKine, scanKine } from '../../src/core/migrate/kine';
import { pairsHash, preflight } from '../../src/core/migrate/preflight';
import {
  KineLog,
  k8sProto,
  kineDdl,
  sealBootstrap,
  sqlite,
  walWriter,
  type NameType,
} from '../../scripts/harness/kineFixture';
import { makeTempDir, removeTempDir, waitUntil } from '../../scripts/harness/processes';
import { captureIO } from '../fixtures/cli';
import type { EtcdCluster } from '../../scripts/harness/etcd';
import { etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

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
        const rows = await latestRows(src);
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

        const pre = await preflight(src, await scanKine(src), 512 * 1024);
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
      assert.equal(
        (await latestRows(without)).length,
        1,
        'the database file alone lacks the WAL rows',
      );
      without.close();

      const src = await openKine(db);
      try {
        assert.ok(src.walFrames > 0);
        const rows = await latestRows(src);
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
      const rows = await latestRows(src);
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

describe('migration into a real 3-member mutual-TLS etcd', () => {
  const { tempDir, track } = testScope('k3s-etcd-migrate-');
  let dir = '';
  let cluster: Cluster;
  let etcd: EtcdCluster;
  let db = '';
  let expected: Map<string, { value: Uint8Array; lease: number }>;
  const etcdctl = (...args: string[]) => {
    const tls = adminTls(cluster) as { caFile: string; certFile: string; keyFile: string };
    const r = spawnSync(
      'etcdctl',
      [
        `--endpoints=${clientEndpoints(cluster).join(',')}`,
        `--cacert=${tls.caFile}`,
        `--cert=${tls.certFile}`,
        `--key=${tls.keyFile}`,
        ...args,
      ],
      { encoding: 'utf8', env: { PATH: process.env['PATH'], ETCDCTL_API: '3' } },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  /** Everything in etcd, as etcdctl sees it: key → value bytes. */
  const everything = () => {
    const out = JSON.parse(etcdctl('get', '--prefix', '', '-w', 'json')) as {
      kvs?: { key: string; value?: string; lease?: number }[];
    };
    return new Map(
      (out.kvs ?? []).map((kv) => [
        Buffer.from(kv.key, 'base64').toString(),
        { value: Buffer.from(kv.value ?? '', 'base64'), lease: kv.lease ?? 0 },
      ]),
    );
  };

  before(async () => {
    dir = await tempDir();
    const r = await etcdWithOurCerts(join(dir, 'pki'), 3, { track, extra: { samePorts: true } });
    cluster = r.cluster;
    etcd = r.etcd;
    db = join(dir, 'state.db');
    const log = history(new KineLog());
    log.create('/registry/events/default/short', Buffer.from('{"reason":"Short"}'), 2);
    sqlite(db, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}\n${log.take()}`);
    expected = log.live();
  });

  it('a wrong token is caught before anything is written', async () => {
    await assert.rejects(
      readSource(db, { token: 'K10x::server:wrong' }),
      /sealed with another token/,
    );
    assert.equal(everything().size, 0);
  });

  it('writes the latest state byte for byte, leases per TTL, and verifies it', async () => {
    const src = await readSource(db, { token: TOKEN });
    const r = await migrateToEtcd(cluster, src, {});
    assert.equal(r.write.written, expected.size);
    assert.deepEqual(r.write.conflicts, []);
    assert.equal(r.verify.ok, true, JSON.stringify(r.verify));
    assert.equal(r.verify.targetSha256, src.pre.sha256);
    const got = everything();
    assert.deepEqual(
      [...got.keys()].sort(),
      [...expected.keys()].sort(),
      'deleted keys and kine rows absent',
    );
    for (const [k, v] of expected) assert.ok(got.get(k)!.value.equals(Buffer.from(v.value)), k);
    // Leases: one per TTL, the right TTL on each leased key; the short one expires.
    const leaseOf = (k: string) => got.get(k)!.lease;
    assert.notEqual(leaseOf('/registry/masterleases/10.0.0.1'), 0);
    assert.equal(
      leaseOf('/registry/leases/kube-node-lease/n1'),
      0,
      'a key without TTL has no lease',
    );
    // etcdctl's -w json prints lease IDs as JSON numbers (int64: precision is lost), so read
    // the lease ID from etcdctl's fields output.
    const fields = etcdctl('get', '/registry/events/default/e1', '-w', 'fields');
    const leaseId = BigInt(/"Lease" : (\d+)/.exec(fields)?.[1] ?? '0');
    assert.notEqual(leaseId, 0n);
    assert.match(etcdctl('lease', 'timetolive', leaseId.toString(16)), /granted with TTL\(3600s\)/);
    await waitUntil(
      async () => !everything().has('/registry/events/default/short'),
      15_000,
      'the 2 s lease expires',
    );
    assert.ok(everything().has('/registry/events/default/e1'));
  });

  it("a migration that would pass etcd's quota is refused before anything is written, with the inventory key to raise", async () => {
    const { client } = await healthyClient(cluster);
    try {
      await assert.rejects(
        requireRoom(client, 1.5 * 1024 * 1024 * 1024),
        /passes etcd's default quota of 2 GB: raise etcd\.quotaBackendBytes in k3s-etcd\.yaml \(for example 8GiB\) and apply it with provision first\. Nothing was written\./,
      );
      await requireRoom(client, 10 * 1024 * 1024);
      // A quota raised in the inventory (as etcd reports it on /metrics) makes the room.
      await requireRoom(client, 1.5 * 1024 * 1024 * 1024, 8 * 1024 * 1024 * 1024);
      await assert.rejects(
        requireRoom(client, 1.5 * 1024 * 1024 * 1024, 2.5 * 1024 * 1024 * 1024),
        /passes its quota of 2560 MB: raise etcd\.quotaBackendBytes/,
      );
    } finally {
      client.close();
    }
  });

  it('a non-empty target is refused; an interrupted run resumes without duplicating or overwriting', async () => {
    const src = await readSource(db, { token: TOKEN });
    await assert.rejects(
      migrateToEtcd(cluster, src, {}),
      /already holds \d+ key\(s\) under \/registry\/ and 1 key\(s\) under \/bootstrap\//,
    );
    etcdctl('del', '--prefix', '');
    const stop = new AbortController();
    await assert.rejects(
      migrateToEtcd(cluster, src, {
        batch: 8,
        signal: stop.signal,
        onProgress: (p) => p.done >= 16 && stop.abort(),
      }),
      /cancelled/i,
    );
    const partial = everything().size;
    assert.ok(partial >= 16 && partial < expected.size, `partial: ${partial}`);
    const again = await migrateToEtcd(cluster, src, { force: true, batch: 8 });
    assert.equal(again.write.alreadyThere, partial);
    assert.equal(again.write.written, expected.size - partial);
    assert.deepEqual(again.write.conflicts, []);
    assert.equal(again.verify.ok, true, JSON.stringify(again.verify));
  });

  it('the CLI: a dry run reports and writes nothing; --source with the backup token beside it migrates', async () => {
    etcdctl('del', '--prefix', '');
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));

    await writeFile(join(dir, 'token'), `${TOKEN}\n`);
    const dry = captureIO(dir);
    assert.equal(
      await main(['migrate', 'sqlite-to-etcd', '--source', 'state.db', '--dry-run'], dry.io),
      0,
      dry.out.join('\n'),
    );
    assert.match(dry.out.join('\n'), /dry run: nothing written/);
    assert.match(dry.out.join('\n'), /decrypts with the token/);
    assert.equal(everything().size, 0);
    const run = captureIO(dir);
    assert.equal(
      await main(['migrate', 'sqlite-to-etcd', '--source', 'state.db', '--yes'], run.io),
      0,
      run.out.join('\n'),
    );
    assert.match(run.out.join('\n'), /verified: yes/);
    const report = /Report: (\S+)/.exec(run.out.join('\n'))?.[1] ?? '';
    assert.match(await readFile(report, 'utf8'), /\| verified \| yes: same keys, same bytes \|/);
  });
});
