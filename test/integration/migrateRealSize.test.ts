/**
 * The migration at a real cluster's size, into a real 3-member mutual-TLS etcd at etcd's default
 * request limit (1.5 MiB, so a transaction the migration sizes wrongly is refused): Helm release
 * secrets of 100-900 KiB side by side in revision order (together far over the limit), batches
 * of long names with values near a batch's share, thousands of small objects and churned
 * history, more than gRPC's 4 MiB reply limit under /registry/. It arrives byte for byte
 * (checked with etcdctl, against the fixture's own model); an interrupted run, re-run, completes
 * without rewriting what was there; a value over the request limit is refused before anything is
 * written and goes through once the limit is raised on both sides (flag or inventory), even a
 * value over gRPC's 4 MiB reply limit, which the verification must read back.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { adminTls } from '../../src/core/etcd/connection';
import type { Cluster } from '../../src/core/inventory/types';
import { pairsHash } from '../../src/core/migrate/preflight';
import { migrateToEtcd, readSource } from '../../src/core/migrate/migrate';
import { KineLog, kineDdl, realSizeHistory, sqlite } from '../../scripts/harness/kineFixture';
import { captureIO } from '../fixtures/cli';
import { etcdctl, type EtcdCluster, type EtcdctlTls } from '../../scripts/harness/etcd';
import { etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

/** A second target's request limit, so a 5 MiB value can go through when raised. */
const RAISED_MAX_REQUEST = 6 * 1024 * 1024;

describe('migration at a real size into a real 3-member mutual-TLS etcd', () => {
  const { tempDir, track } = testScope('k3s-etcd-migrate-size-');
  let dir = '';
  let cluster: Cluster;
  let etcd: EtcdCluster;
  let db = '';
  let expected: Map<string, { value: Uint8Array; lease: number }>;

  const ctl = async (...args: string[]) => {
    const r = await etcdctl(etcd, args, { tls: adminTls(cluster) as EtcdctlTls });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  /** Everything in etcd as etcdctl reads it: key → value bytes and mod revision. */
  const everything = async () => {
    const out = JSON.parse(await ctl('get', '--prefix', '', '-w', 'json')) as {
      kvs?: { key: string; value?: string; mod_revision: number }[];
    };
    return new Map(
      (out.kvs ?? []).map((kv) => [
        Buffer.from(kv.key, 'base64').toString(),
        { value: Buffer.from(kv.value ?? '', 'base64'), mod: kv.mod_revision },
      ]),
    );
  };
  const assertExact = async () => {
    const got = await everything();
    assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
    for (const [k, v] of expected)
      assert.ok(got.get(k)!.value.equals(Buffer.from(v.value)), `${k}: byte for byte`);
    return got;
  };

  before(async () => {
    dir = await tempDir();
    const r = await etcdWithOurCerts(join(dir, 'pki'), 3, { track, extra: { samePorts: true } });
    cluster = r.cluster;
    etcd = r.etcd;
    db = join(dir, 'state.db');
    sqlite(db, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}`);
    const log = new KineLog();
    realSizeHistory(log, (sql) => sqlite(db, `BEGIN;\n${sql}\nCOMMIT;`));
    // 300 releases with 105-byte names and ~12 KiB values: 128 of them fill a batch to the byte.
    for (let i = 0; i < 300; i++)
      log.create(
        `/registry/secrets/kube-system/sh.helm.release.v1.${'r'.repeat(50)}.v${String(i).padStart(4, '0')}`,
        Buffer.alloc(11_950, i % 251),
      );
    sqlite(db, `BEGIN;\n${log.take()}\nCOMMIT;`);
    expected = log.live();
    const bytes = [...expected].reduce((n, [k, v]) => n + k.length + v.value.byteLength, 0);
    assert.ok(bytes > 4 * 1024 * 1024, `more than 4 MiB to migrate: ${bytes}`);
  });

  it('megabyte values side by side and > 4 MiB in all arrive byte for byte, verified', async () => {
    const src = await readSource(db);
    assert.equal(src.pre.liveKeys, expected.size);
    const r = await migrateToEtcd(cluster, src, {});
    assert.equal(r.write.written, expected.size);
    assert.deepEqual(r.write.conflicts, []);
    assert.equal(
      r.verify.ok,
      true,
      JSON.stringify({ ...r.verify, missing: r.verify.missing.length }),
    );
    assert.equal(r.verify.foundKeys, expected.size);
    const sha = pairsHash([...expected].map(([key, v]) => ({ key, value: v.value })));
    assert.equal(src.pre.sha256, sha);
    assert.equal(r.verify.targetSha256, sha);
    await assertExact();
  });

  it('an interrupted run, run again, completes without rewriting what was written', async () => {
    await ctl('del', '--prefix', '');
    const src = await readSource(db);
    const stop = new AbortController();
    await assert.rejects(
      migrateToEtcd(cluster, src, {
        signal: stop.signal,
        // Stop once the Helm releases (written right after the 3,000 small objects) are in.
        onProgress: (p) => p.bytesDone > 3 * 1024 * 1024 && stop.abort(),
      }),
      /cancelled/i,
    );
    const partial = await everything();
    assert.ok(partial.size > 0 && partial.size < expected.size, `partial: ${partial.size}`);
    const again = await migrateToEtcd(cluster, src, { force: true });
    assert.equal(again.write.alreadyThere, partial.size);
    assert.equal(again.write.written, expected.size - partial.size);
    assert.deepEqual(again.write.conflicts, []);
    assert.equal(again.verify.ok, true);
    const got = await assertExact();
    for (const [k, v] of partial) assert.equal(got.get(k)!.mod, v.mod, `${k} was not rewritten`);
  });

  it('a value over the request limit is refused before anything is written; raised (flag or inventory), even a 5 MiB value goes through', async () => {
    // Its own single-member target, started with a raised limit.
    const raisedTarget = await etcdWithOurCerts(join(dir, 'pki-raised'), 1, {
      track,
      names: ['r-1'],
      extra: { extraArgs: [`--max-request-bytes=${RAISED_MAX_REQUEST}`] },
    });
    const tls = adminTls(raisedTarget.cluster) as EtcdctlTls;
    const big = join(dir, 'big.db');
    const log = new KineLog();
    log.create('/registry/configmaps/default/small', Buffer.from('{"a":1}'));
    log.create('/registry/secrets/default/huge', Buffer.alloc(5 * 1024 * 1024, 7));
    sqlite(big, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}\n${log.take()}`);
    /** The inventory of the raised target, with etcd.maxRequestBytes when given. */
    const inventory = (limit?: number) =>
      writeFile(
        join(dir, 'k3s-etcd.yaml'),
        harnessInventory(raisedTarget.etcd, { pki: 'pki-raised' }).replace(
          'clientPort: ',
          `${limit ? `maxRequestBytes: ${limit}, ` : ''}clientPort: `,
        ),
      );
    const cli = async (...args: string[]) => {
      const c = captureIO(dir);
      const code = await main(
        ['migrate', 'sqlite-to-etcd', '--source', 'big.db', '--yes', ...args],
        c.io,
      );
      return { code, text: c.out.join('\n') };
    };
    const target = async (...args: string[]) => {
      const r = await etcdctl(raisedTarget.etcd, args, { tls });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    const keys = async () =>
      (await target('get', '--prefix', '', '--keys-only')).split('\n').filter(Boolean);
    const both = ['/registry/configmaps/default/small', '/registry/secrets/default/huge'];

    await inventory();
    const refused = await cli();
    assert.equal(refused.code, 1);
    assert.match(
      refused.text,
      /\/registry\/secrets\/default\/huge holds 5242\d{3} bytes: .* more than the target accepts in one request \(1572864 bytes\)\. Raise etcd\.maxRequestBytes in k3s-etcd\.yaml .* or give the target's own limit with --max-request-bytes\. Nothing was written\./,
    );
    assert.deepEqual(await keys(), []);

    const raised = await cli('--max-request-bytes', String(RAISED_MAX_REQUEST));
    assert.equal(raised.code, 0, raised.text);
    assert.match(raised.text, /2 written, 0 already there, 0 conflict\(s\); verified: yes/);
    assert.deepEqual(await keys(), both);
    const huge = await etcdctl(
      raisedTarget.etcd,
      ['get', '/registry/secrets/default/huge', '--print-value-only'],
      { tls },
    );
    assert.equal(huge.stdout.replace(/\n$/, '').length, 5 * 1024 * 1024, 'the 5 MiB value whole');

    await target('del', '--prefix', '');
    await inventory(RAISED_MAX_REQUEST);
    const fromInventory = await cli();
    assert.equal(fromInventory.code, 0, fromInventory.text);
    assert.match(fromInventory.text, /2 written, 0 already there, 0 conflict\(s\); verified: yes/);
    assert.deepEqual(await keys(), both);
  });
});
