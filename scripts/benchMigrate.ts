/**
 * `npm run bench -- migrate`: the SQLite → etcd migration on the shape K3s users report: about
 * 100,000 history rows over a few thousand live keys, dominated by hot lease keys with tens of
 * thousands of revisions. Against a fresh 3-member mutual-TLS etcd (our certificates): time to
 * read the source (WAL, selection, preflight, hash), to write, and to verify; keys/s against the
 * raw write throughput of the same etcd measured by our perf engine in the same run; peak RSS.
 * Goals: migrated and verified in under 30 s, at least 50% of raw write throughput, < 300 MB.
 */
import { join } from 'node:path';
import { runPerfCheck } from '../src/core/etcd/perf';
import { migrateToEtcd, readSource } from '../src/core/migrate/migrate';
import { etcdWithOurCerts, admin } from '../test/integration/harness/tlsCluster';
import type { EtcdCluster } from '../test/integration/harness/etcd';
import { KineLog, k8sProto, kineDdl, sealBootstrap, sqlite } from '../test/support/kineFixture';
import { makeTempDir, removeTempDir } from '../test/support/processes';
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

export async function benchMigrate(): Promise<void> {
  const dir = await makeTempDir('k3s-etcd-bench-migrate-');
  const clusters: EtcdCluster[] = [];
  try {
    let t = performance.now();
    const db = join(dir, 'state.db');
    const fx = buildFixture(db);
    const buildMs = performance.now() - t;
    const r = await etcdWithOurCerts(join(dir, 'pki'), 3, {
      track: (c) => clusters.push(c),
      extra: { samePorts: true },
    });
    const cluster = r.cluster;

    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 25);
    t = performance.now();
    const src = await readSource(db, { token: TOKEN });
    const readMs = performance.now() - t;
    let writeEnd = 0;
    const t0 = performance.now();
    const res = await migrateToEtcd(cluster, src, {
      batch: 128,
      onProgress: (p) => {
        if (p.done === p.total) writeEnd = performance.now();
      },
    });
    const totalMs = performance.now() - t0;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (!res.verify.ok) throw new Error(`verification failed: ${JSON.stringify(res.verify)}`);
    const writeMs = writeEnd - t0;
    const keysPerSec = src.pre.liveKeys / (writeMs / 1000);

    // The same etcd's raw write throughput, our perf engine (etcdctl check perf's xl load), 10 s.
    const raw = await runPerfCheck({
      endpoints: r.etcd.endpoints,
      tls: admin(join(dir, 'pki')),
      load: 'xl',
      durationSec: 10,
      prefix: '/bench-raw/',
    });

    console.log('\nMigration SQLite → etcd, 3-member mutual-TLS etcd');
    console.log(
      `  fixture: ${fx.rows} history rows, ${fx.live} live keys (built in ${ms(buildMs)}); ${src.pre.liveKeys} keys to write`,
    );
    console.log(`  read source (WAL, selection, preflight, SHA-256): ${ms(readMs)}`);
    console.log(
      `  write: ${ms(writeMs)} = ${Math.round(keysPerSec)} keys/s; verify: ${ms(totalMs - writeMs)}`,
    );
    console.log(
      `  read + write + verify: ${ms(readMs + totalMs)} (goal < 30000 ms); verified: ${res.verify.ok}`,
    );
    console.log(
      `  raw write throughput of the same etcd (perf engine, xl, 10 s): ${Math.round(raw.rps)} writes/s; migration/raw = ${(keysPerSec / raw.rps).toFixed(2)} (goal >= 0.5)`,
    );
    console.log(`  peak RSS: ${Math.round(peakRss / 1024 / 1024)} MB (goal < 300 MB)`);
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    await removeTempDir(dir);
  }
}
