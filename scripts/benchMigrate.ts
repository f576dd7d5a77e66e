/**
 * `npm run bench -- migrate`: the SQLite → etcd migration on the shape K3s users report: about
 * 100,000 history rows over a few thousand live keys, dominated by hot lease keys with tens of
 * thousands of revisions. Against a fresh 3-member mutual-TLS etcd (our certificates): time to
 * read the source (WAL, selection, preflight, hash), to write, and to verify; keys/s against the
 * raw write throughput of the same etcd measured by our perf engine in the same run; peak RSS.
 * Goals: migrated and verified in under 30 s, at least 50% of raw write throughput, < 300 MB.
 * Then a 3 GB state.db (history of hot leases, 30,000 live keys), read from disk page by page:
 * read and migrated in under 3 minutes, peak RSS under 500 MB, writes at >= 50% of the raw rate.
 */
import { statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runPerfCheck } from '../src/core/perf/perf';
import type { Cluster } from '../src/core/inventory/types';
import { migrateToEtcd, readSource } from '../src/core/migrate/migrate';
import { etcdWithOurCerts, admin } from './harness/etcdTls';
import { etcdctl, type EtcdCluster, type EtcdctlTls } from './harness/etcd';
import {
  bigKineDb,
  KineLog,
  k8sProto,
  kineDdl,
  sealBootstrap,
  sqlite,
} from './harness/kineFixture';
import { makeTempDir, removeTempDir } from './harness/processes';
import { ms } from './benchStats';

const TOKEN = 'K10bench::server:bench-token';

/** ~100k rows: 3,000 live objects, 3 hot leases × 30,000 revisions, node leases, events, masterlease. */
function buildFixture(db: string): { rows: number; live: number } {
  sqlite(db, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}`);
  const log = new KineLog();
  const flush = () => sqlite(db, `BEGIN;\n${log.take()}\nCOMMIT;`);
  log.create('/registry/health', Buffer.from('{"health":"true"}'));
  for (let i = 0; i < 1500; i++) log.create(`/registry/pods/ns-${i % 20}/pod-${i}`, k8sProto(i));
  for (let i = 0; i < 1000; i++)
    log.create(`/registry/configmaps/ns-${i % 20}/cm-${i}`, Buffer.from(JSON.stringify({ i })));
  for (let i = 0; i < 500; i++)
    log.create(`/registry/secrets/ns-${i % 20}/s-${i}`, Buffer.from(`k8s:enc:aescbc:v1:key1:${i}`));
  for (let i = 0; i < 500; i++)
    log.create(`/registry/events/ns-${i % 20}/e-${i}`, Buffer.from(`{"e":${i}}`), 3600);
  const b = sealBootstrap(TOKEN, '{"ServerCA":{"Content":"x"}}');
  log.create(b.key, b.value);
  flush();
  for (let h = 0; h < 3; h++) {
    const key = `/registry/leases/kube-system/hot-${h}`;
    log.create(key, k8sProto(h));
    for (let r = 0; r < 30_000; r++) {
      log.update(key, k8sProto(r));
      if (r % 5000 === 4999) flush();
    }
  }
  for (let n = 0; n < 20; n++) {
    const key = `/registry/leases/kube-node-lease/node-${n}`;
    log.create(key, k8sProto(n));
    for (let r = 0; r < 200; r++) log.update(key, k8sProto(r));
  }
  log.create('/registry/masterleases/10.0.0.1', k8sProto(1), 15);
  for (let r = 0; r < 2000; r++) log.update('/registry/masterleases/10.0.0.1', k8sProto(r), 15);
  flush();
  return { rows: log.revision, live: log.live().size };
}

interface Run {
  readMs: number;
  writeMs: number;
  verifyMs: number;
  keys: number;
  rows: number;
  fileBytes: number;
  peakRss: number;
}

/** One migration in this process, phase by phase, with the peak RSS sampled while it runs. */
async function migrateOnce(cluster: Cluster, db: string, token?: string): Promise<Run> {
  (globalThis as { gc?: () => void }).gc?.();
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 25);
  try {
    let t = performance.now();
    const src = await readSource(db, token ? { token } : {});
    const readMs = performance.now() - t;
    let writeEnd = 0;
    t = performance.now();
    const res = await migrateToEtcd(cluster, src, {
      onProgress: (p) => {
        if (p.phase === 'write' && p.done === p.total) writeEnd = performance.now();
      },
    });
    const totalMs = performance.now() - t;
    if (!res.verify.ok) throw new Error(`verification failed: ${JSON.stringify(res.verify)}`);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    return {
      readMs,
      writeMs: writeEnd - t,
      verifyMs: totalMs - (writeEnd - t),
      keys: src.pre.liveKeys,
      rows: src.pre.rows,
      fileBytes: statSync(db).size,
      peakRss,
    };
  } finally {
    clearInterval(sampler);
  }
}

const mb = (n: number) => `${Math.round(n / 1024 ** 2)} MB`;

export async function benchMigrate(): Promise<void> {
  const dir = await makeTempDir('k3s-etcd-bench-migrate-');
  const clusters: EtcdCluster[] = [];
  try {
    const r = await etcdWithOurCerts(join(dir, 'pki'), 3, {
      track: (c) => clusters.push(c),
      extra: { samePorts: true, extraArgs: ['--quota-backend-bytes=8589934592'] },
    });
    const { cluster } = r;
    const wipe = () =>
      etcdctl(r.etcd, ['del', '--prefix', ''], { tls: admin(join(dir, 'pki')) as EtcdctlTls });

    // 1. ~100k rows, the shape K3s users report.
    let t = performance.now();
    const small = join(dir, 'state.db');
    const fx = buildFixture(small);
    const smallBuildMs = performance.now() - t;
    const a = await migrateOnce(cluster, small, TOKEN);
    await wipe();

    // 2. A 3 GB state.db: history of hot leases, 30,000 live keys (under 1% of the rows).
    const big = join(dir, 'big', 'state.db');
    await mkdir(join(dir, 'big'));
    t = performance.now();
    const bx = bigKineDb(big, { bytes: 3 * 1024 ** 3, live: 30_000, hot: 200 });
    const bigBuildMs = performance.now() - t;
    const b = await migrateOnce(cluster, big);
    await rm(big, { force: true });

    // The same etcd's raw write throughput, our perf engine (etcdctl check perf's xl load), 10 s.
    const raw = await runPerfCheck({
      endpoints: r.etcd.endpoints,
      tls: admin(join(dir, 'pki')),
      load: 'xl',
      durationSec: 10,
      prefix: '/bench-raw/',
    });

    const report = (name: string, x: Run, goalMs: number, goalRss: number) => {
      const keysPerSec = x.keys / (x.writeMs / 1000);
      console.log(
        `  ${name}: ${x.rows} history rows, ${x.keys} live keys, file ${mb(x.fileBytes)}`,
      );
      console.log(
        `    read (one pass over the table, then every value hashed): ${ms(x.readMs)}; write: ${ms(x.writeMs)} = ${Math.round(keysPerSec)} keys/s; verify: ${ms(x.verifyMs)}`,
      );
      console.log(
        `    read + write + verify: ${ms(x.readMs + x.writeMs + x.verifyMs)} (goal < ${goalMs} ms); migration/raw write rate = ${(keysPerSec / raw.rps).toFixed(2)} (goal >= 0.5); peak RSS ${mb(x.peakRss)} (goal < ${goalRss} MB)`,
      );
    };
    console.log('\nMigration SQLite → etcd, 3-member mutual-TLS etcd');
    console.log(
      `  raw write throughput of the same etcd (perf engine, xl, 10 s): ${Math.round(raw.rps)} writes/s`,
    );
    console.log(
      `  fixtures built by sqlite3: 100k rows in ${ms(smallBuildMs)}, 3 GB in ${ms(bigBuildMs)} (${bx.rows} rows)`,
    );
    report(`~100k rows (${fx.rows})`, a, 30_000, 300);
    report('3 GB state.db', b, 180_000, 500);
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    await removeTempDir(dir);
  }
}
