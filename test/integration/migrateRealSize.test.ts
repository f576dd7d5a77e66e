/**
 * The migration at a real cluster's size, into a real 3-member mutual-TLS etcd: Helm release
 * secrets of 100-900 KiB side by side in revision order (together far over etcd's 1.5 MiB
 * request limit), thousands of small objects and churned history, more than gRPC's 4 MiB reply
 * limit under /registry/. It arrives byte for byte (checked with etcdctl, against the fixture's
 * own model); an interrupted run, re-run, completes without rewriting what was there; a value
 * over the request limit is refused before anything is written and goes through once the limit
 * is raised on both sides.
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

/** The target runs with a 3 MiB request limit, so a 2 MiB value can go through when raised. */
const TARGET_MAX_REQUEST = 3 * 1024 * 1024;

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
    const r = await etcdWithOurCerts(join(dir, 'pki'), 3, {
      track,
      extra: { samePorts: true, extraArgs: [`--max-request-bytes=${TARGET_MAX_REQUEST}`] },
    });
    cluster = r.cluster;
    etcd = r.etcd;
    db = join(dir, 'state.db');
    sqlite(db, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}`);
    const log = new KineLog();
    realSizeHistory(log, (sql) => sqlite(db, `BEGIN;\n${sql}\nCOMMIT;`));
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

  it('a value over the request limit is refused before anything is written; raised, it goes through', async () => {
    await ctl('del', '--prefix', '');
    const big = join(dir, 'big.db');
    const log = new KineLog();
    log.create('/registry/configmaps/default/small', Buffer.from('{"a":1}'));
    log.create('/registry/secrets/default/huge', Buffer.alloc(2 * 1024 * 1024, 7));
    sqlite(big, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}\n${log.take()}`);
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const cli = async (...args: string[]) => {
      const c = captureIO(dir);
      const code = await main(
        ['migrate', 'sqlite-to-etcd', '--source', 'big.db', '--yes', ...args],
        c.io,
      );
      return { code, text: c.out.join('\n') };
    };
    const refused = await cli();
    assert.equal(refused.code, 1);
    assert.match(
      refused.text,
      /\/registry\/secrets\/default\/huge holds 2097\d+ bytes: .* more than the target accepts in one request \(1572864 bytes\)\. Start etcd with a larger --max-request-bytes .* \(--max-request-bytes\)\. Nothing was written\./,
    );
    assert.equal((await everything()).size, 0);
    const raised = await cli('--max-request-bytes', String(TARGET_MAX_REQUEST));
    assert.equal(raised.code, 0, raised.text);
    assert.match(raised.text, /2 written, 0 already there, 0 conflict\(s\); verified: yes/);
    assert.equal((await everything()).get('/registry/secrets/default/huge')!.value.length, 2097152);
  });
});
