/**
 * The way back, round trip on a real 3-member mutual-TLS etcd: a kine fixture (a real-size
 * history with Helm releases, values of 1.4 MiB side by side, leases of two TTLs, deletions,
 * re-creates, compaction, the /bootstrap key) migrated SQLite → etcd with the existing code,
 * then etcd → SQLite with `migrate etcd-to-sqlite`: kine's live selection of the new file equals
 * the source's (count, leased count, SHA-256 over key, value and TTL), the file is kine's
 * schema, and what is not K3s's stays behind.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { main } from '../../src/cli/main';
import { healthyClient } from '../../src/core/etcd/connection';
import type { Cluster } from '../../src/core/inventory/types';
import { readEtcd } from '../../src/core/migrate/etcdSource';
import { latestRows, openKine } from '../../src/core/migrate/kine';
import { migrateToEtcd, readSource } from '../../src/core/migrate/migrate';
import { pairsHasher } from '../../src/core/migrate/preflight';
import { migrateToSqlite } from '../../src/core/migrate/toSqlite';
import {
  KineLog,
  k8sProto,
  kineDdl,
  realSizeHistory,
  sealBootstrap,
  sqlite,
} from '../../scripts/harness/kineFixture';
import type { EtcdCluster } from '../../scripts/harness/etcd';
import { captureIO } from '../fixtures/cli';
import { etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

const TOKEN = 'K10feed::server:the-way-back';
const MIB = 1024 * 1024;
const BIG = Math.floor(1.4 * MIB);

/** Kine's live selection of `db`: count, leased count, SHA-256 over (key, value, TTL) by key. */
async function kineFigures(db: string) {
  const src = await openKine(db);
  try {
    const rows = (await latestRows(src))
      .map((r) => ({ ...r, key: Buffer.from(r.name) }))
      .sort((a, b) => Buffer.compare(a.key, b.key));
    const h = pairsHasher();
    for (const r of rows) h.add(r.key, r.value, r.lease);
    return {
      count: rows.length,
      leased: rows.filter((r) => r.lease > 0).length,
      sha256: h.digest(),
      bytes: rows.reduce((n, r) => n + r.value.byteLength, 0),
      largest: Math.max(...rows.map((r) => r.value.byteLength)),
    };
  } finally {
    src.close();
  }
}

describe('etcd → SQLite on a real 3-member mutual-TLS etcd: the round trip', () => {
  const { tempDir, track } = testScope('k3s-etcd-back-');
  let dir = '';
  let cluster: Cluster;
  let etcd: EtcdCluster;
  let source = '';
  let log: KineLog;

  before(async () => {
    dir = await tempDir();
    const r = await etcdWithOurCerts(join(dir, 'pki'), 3, { track, extra: { samePorts: true } });
    cluster = r.cluster;
    etcd = r.etcd;
    source = join(dir, 'source', 'state.db');
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    await writeFile(join(dir, 'token'), `${TOKEN}\n`);
    await mkdir(join(dir, 'source'));
    await mkdir(join(dir, 'back'));
    log = new KineLog();
    sqlite(source, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}`);
    realSizeHistory(log, (sql) => sqlite(source, sql));
    // Values near etcd's request limit, side by side (one range holds more than gRPC's 4 MiB).
    for (let i = 0; i < 4; i++) log.create(`/registry/secrets/default/big-${i}`, randomBytes(BIG));
    for (let i = 0; i < 40; i++)
      log.create(`/registry/events/ns-${i % 4}/e-${i}`, Buffer.from(`{"n":${i}}`), 3600);
    for (let i = 0; i < 40; i += 3) log.delete(`/registry/events/ns-${i % 4}/e-${i}`);
    log.create('/registry/masterleases/10.0.0.1', k8sProto(1), 600);
    for (let i = 0; i < 20; i++) log.update('/registry/masterleases/10.0.0.1', k8sProto(i), 600);
    log.compact();
    log.create('/registry/configmaps/default/empty', new Uint8Array());
    // Names are data: quoted as blobs, never spliced into the SQL; UTF-8 kept byte for byte.
    log.create("/registry/configmaps/default/o'brien'); DROP TABLE kine; --", Buffer.from('x'));
    log.create('/registry/configmaps/default/ünïcode-名前', Buffer.from('y'));
    const b = sealBootstrap(TOKEN, JSON.stringify({ ServerCA: { Content: 'x' } }));
    log.create(b.key, b.value);
    sqlite(source, log.take());
    // SQLite → etcd with the existing code.
    const src = await readSource(source, { token: TOKEN });
    const there = await migrateToEtcd(cluster, src, {});
    assert.equal(there.verify.ok, true, JSON.stringify(there.verify));
    // Keys that are not K3s's data: the apiserver's compact_rev_key, this tool's record.
    const { client } = await healthyClient(cluster);
    try {
      await client.put('compact_rev_key').value('apiserver');
      await client.put('/k3s-etcd/maintenance/last-run').value('{}');
    } finally {
      client.close();
    }
  });

  it('a wrong token is refused and a dry run writes nothing; the run writes kine live state equal to the source, byte for byte with TTLs', async () => {
    const target = join(dir, 'back', 'state.db');
    const { client } = await healthyClient(cluster);
    try {
      await assert.rejects(
        readEtcd(client, { token: 'K10x::server:wrong' }),
        /sealed with another token/,
      );
      await assert.rejects(readEtcd(client), /holds K3s's bootstrap data .* give it/);
    } finally {
      client.close();
    }

    const dry = captureIO(dir);
    const dryArgs = ['migrate', 'etcd-to-sqlite', '--target', 'back/state.db', '--dry-run'];
    assert.equal(await main([...dryArgs, '--token-file', 'token'], dry.io), 0, dry.out.join('\n'));
    const dryText = dry.out.join('\n');
    assert.match(dryText, /dry run: nothing written/);
    assert.match(dryText, /decrypts with the token/);
    assert.match(
      dryText,
      /\| leased keys by TTL \(kine keeps the TTL\) \| 600 s: 1, 3600 s: 26 \|/,
    );
    assert.match(dryText, /compact_rev_key 1/);
    assert.match(dryText, /\/k3s-etcd 1/);
    assert.equal(existsSync(target), false);
    assert.equal(existsSync(`${target}.part`), false);

    const t0 = performance.now();
    const run = captureIO(dir);
    assert.equal(
      await main(
        [
          'migrate',
          'etcd-to-sqlite',
          '--target',
          'back/state.db',
          '--token-file',
          'token',
          '--yes',
        ],
        run.io,
      ),
      0,
      run.out.join('\n'),
    );
    const ms = Math.round(performance.now() - t0);
    assert.match(run.out.join('\n'), /verified: yes/);
    assert.equal(existsSync(`${target}.part`), false, 'the .part was renamed');
    assert.equal((await stat(target)).mode & 0o777, 0o600, "K3s's secrets: owner only");

    // kine's live selection of the result equals the source's, and the fixture's own model.
    const want = await kineFigures(source);
    const got = await kineFigures(target);
    assert.deepEqual(got, want);
    const expected = log.live();
    assert.equal(got.count, expected.size);
    assert.equal(got.leased, [...expected.values()].filter((v) => v.lease > 0).length);
    assert.ok(got.largest >= BIG);
    console.log(
      `round trip: ${got.count} keys, ${got.leased} leased, ${(got.bytes / MIB).toFixed(1)} MiB of values, largest ${got.largest} bytes; etcd → SQLite ${ms} ms; SHA-256 ${got.sha256}`,
    );
    const report = /Report: (\S+)/.exec(run.out.join('\n'))?.[1] ?? '';
    assert.match(
      await readFile(report, 'utf8'),
      /\| verified \| yes: same keys, same bytes, same TTLs \|/,
    );

    // Kine's file: its schema and indexes, WAL mode, compact_rev_key as row 1, create rows in
    // etcd's modification order, the AUTOINCREMENT counter at the last row.
    const q = (sql: string) => sqlite(target, sql).trim();
    assert.equal(q('PRAGMA integrity_check;'), 'ok');
    assert.equal(q('PRAGMA journal_mode;'), 'wal');
    assert.deepEqual(
      q("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name;").split('\n'),
      [
        'kine_id_compact_rev_key_with_prev_revision_index',
        'kine_id_deleted_index',
        'kine_name_id_index',
        'kine_name_index',
        'kine_name_prev_revision_uindex',
        'kine_prev_revision_index',
      ],
    );
    assert.equal(
      q('SELECT name, created, deleted, prev_revision, length(value) FROM kine WHERE id = 1;'),
      'compact_rev_key|1|0|0|0',
    );
    assert.equal(q("SELECT seq FROM sqlite_sequence WHERE name = 'kine';"), String(got.count + 1));
    assert.equal(
      q(
        "SELECT count(*) FROM kine WHERE id > 1 AND (created != 1 OR deleted != 0 OR create_revision != 0 OR prev_revision != 0 OR old_value IS NOT NULL OR typeof(name) != 'text');",
      ),
      '0',
    );
    assert.equal(
      q("SELECT lease FROM kine WHERE name = '/registry/masterleases/10.0.0.1';"),
      '600',
    );
    assert.equal(q("SELECT count(*) FROM kine WHERE name LIKE '/k3s-etcd/%';"), '0');
  });

  it('an existing target is refused by name, before anything is written', async () => {
    const target = join(dir, 'back', 'state.db');
    const before = await readFile(target);
    const { client } = await healthyClient(cluster);
    try {
      const src = await readEtcd(client, { token: TOKEN });
      await assert.rejects(
        migrateToSqlite(client, src, target),
        new RegExp(`${target.replace(/[.]/g, '\\.')} exists: .* Move it aside`),
      );
    } finally {
      client.close();
    }
    assert.ok((await readFile(target)).equals(before), 'the existing file is untouched');
  });
});
