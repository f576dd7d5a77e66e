/**
 * `npm run bench -- keyspace`: `k3s-etcd keyspace` over 1,000,000 keys on a real one-member
 * mutual-TLS etcd (our certificates), shaped like a busy K3s cluster: mostly events on leases,
 * pods, ConfigMaps, Secrets (half `k8s:enc:`), a few large Helm release Secrets. Loaded by
 * transactions of 128 puts (etcd's --max-txn-ops), eight in flight. Reports the scan's time and
 * peak heap, and the CLI's time and max RSS in its own process, against etcdctl reading the same keys (`get --prefix "" --keys-only`, and
 * with values, output thrown away) in the same run. Goals: under 60 s and under 300 MB RSS.
 * KEYSPACE_KEYS overrides the key count.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createEndpointClient } from '../src/core/etcd/client';
import { scanKeyspace } from '../src/core/keyspace/scan';
import { admin, etcdWithOurCerts } from './harness/etcdTls';
import type { EtcdCluster } from './harness/etcd';
import { makeTempDir, removeTempDir } from './harness/processes';
import { ms } from './benchStats';

const mb = (n: number) => `${Math.round(n / 1024 ** 2)} MB`;

/** A value shaped like kube-apiserver's: `k8s\0` + runtime.Unknown with a TypeMeta, then padding. */
function envelope(kind: string, bytes: number): Buffer {
  const tm = Buffer.concat([
    Buffer.from([0x0a, 2]),
    Buffer.from('v1'),
    Buffer.from([0x12, kind.length]),
    Buffer.from(kind),
  ]);
  const pad = randomBytes(Math.max(0, bytes - tm.length - 10));
  const len = (n: number) => {
    const out: number[] = [];
    while (n > 127) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return Buffer.from(out);
  };
  return Buffer.concat([
    Buffer.from('k8s\0'),
    Buffer.from([0x0a, tm.length]),
    tm,
    Buffer.from([0x12]),
    len(pad.length),
    pad,
  ]);
}

/** The i-th key and value of the fixture. */
function keyOf(i: number): { key: string; value: Buffer; leased: boolean } {
  const ns = `ns-${i % 50}`;
  const r = i % 20;
  if (r < 12)
    return { key: `/registry/events/${ns}/e-${i}`, value: envelope('Event', 250), leased: true };
  if (r < 16)
    return { key: `/registry/pods/${ns}/p-${i}`, value: envelope('Pod', 500), leased: false };
  if (r < 18)
    return {
      key: `/registry/configmaps/${ns}/c-${i}`,
      value: envelope('ConfigMap', 200),
      leased: false,
    };
  if (i % 100_000 === 19)
    return {
      key: `/registry/secrets/${ns}/sh.helm.release.v1.app.v${i}`,
      value: envelope('Secret', 200_000),
      leased: false,
    };
  return {
    key: `/registry/secrets/${ns}/s-${i}`,
    value:
      r === 18
        ? Buffer.concat([Buffer.from('k8s:enc:aescbc:v1:key1:'), randomBytes(150)])
        : envelope('Secret', 150),
    leased: false,
  };
}

/** `k3s-etcd keyspace --json` in its own process, as a user runs it: [seconds, max RSS bytes]. */
function cliRun(args: string[]): Promise<[number, number]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      '/usr/bin/time',
      [
        '-f',
        '%e %M',
        process.execPath,
        '--import',
        'tsx',
        join(__dirname, '../src/cli/main.ts'),
        'keyspace',
        '--json',
        ...args,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const m = /(\d+(?:\.\d+)?) (\d+)\s*$/.exec(err);
      if (code !== 0 || !m) reject(new Error(`keyspace exited ${code}: ${err.slice(-500)}`));
      else resolve([Number(m[1]), Number(m[2]) * 1024]);
    });
  });
}

function timed(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn('/usr/bin/etcdctl', args, {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, ETCDCTL_API: '3' },
    });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(performance.now() - t) : reject(new Error(`etcdctl exited ${code}`)),
    );
  });
}

export async function benchKeyspace(): Promise<void> {
  const total = Number(process.env['KEYSPACE_KEYS'] ?? 1_000_000);
  const dir = await makeTempDir('k3s-etcd-bench-keyspace-');
  const clusters: EtcdCluster[] = [];
  try {
    const pki = join(dir, 'pki');
    const { etcd } = await etcdWithOurCerts(pki, 1, {
      track: (c) => clusters.push(c),
      extra: { extraArgs: ['--quota-backend-bytes=8589934592', '--snapshot-count=100000'] },
    });
    const tls = admin(pki);
    const client = await createEndpointClient(etcd.endpoints[0]!, { tls, timeoutMs: 60_000 });
    let t = performance.now();
    const lease = await client.lease(3600, { autoKeepAlive: false }).grant();
    let next = 0;
    const loader = async () => {
      while (next < total) {
        const from = next;
        next = Math.min(total, next + 128);
        const success = [];
        for (let i = from; i < next; i++) {
          const k = keyOf(i);
          success.push({
            request_put: {
              key: Buffer.from(k.key),
              value: k.value,
              ...(k.leased ? { lease } : {}),
            },
          });
        }
        await client.kv.txn({ success });
      }
    };
    await Promise.all(Array.from({ length: 8 }, loader));
    const loadMs = performance.now() - t;
    const status = await client.maintenance.status();

    (globalThis as { gc?: () => void }).gc?.();
    const rss0 = process.memoryUsage().rss;
    let peakRss = rss0;
    let peakHeap = 0;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
    }, 25);
    t = performance.now();
    const report = await scanKeyspace(client, { top: 20 });
    const scanMs = performance.now() - t;
    clearInterval(sampler);
    client.close();
    if (report.keys !== total) throw new Error(`scanned ${report.keys} keys, loaded ${total}`);

    const base = [
      `--endpoints=${etcd.endpoints[0]}`,
      `--cacert=${tls.caFile}`,
      `--cert=${tls.certFile}`,
      `--key=${tls.keyFile}`,
      '--command-timeout=300s',
    ];
    const [cliSec, cliRss] = await cliRun([
      `--endpoints=${etcd.endpoints[0]}`,
      `--cacert=${tls.caFile}`,
      `--cert=${tls.certFile}`,
      `--key=${tls.keyFile}`,
    ]);
    const keysOnlyMs = await timed([...base, 'get', '--prefix', '', '--keys-only']);
    const valuesMs = await timed([...base, 'get', '--prefix', '']);

    console.log(`\nKeyspace over ${total} keys, one-member mutual-TLS etcd`);
    console.log(
      `  loaded in ${ms(loadMs)} (${Math.round(total / (loadMs / 1000))} keys/s: txns of 128 puts, 8 in flight); database ${mb(Number(status.dbSize))}, ${mb(report.bytes)} of keys and values`,
    );
    console.log(
      `  scan in-process: ${ms(scanMs)} = ${Math.round(total / (scanMs / 1000))} keys/s in ${report.pages} pages (goal < 60 s: ${scanMs < 60_000 ? 'met' : 'NOT met'}); peak heap ${mb(peakHeap)}, RSS +${mb(peakRss - rss0)} over the loader's ${mb(rss0)}`,
    );
    console.log(
      `  k3s-etcd keyspace --json in its own process: ${cliSec.toFixed(1)} s, max RSS ${mb(cliRss)} (goal < 300 MB: ${cliRss < 300 * 1024 ** 2 ? 'met' : 'NOT met'})`,
    );
    console.log(
      `  etcdctl get --prefix "" --keys-only: ${ms(keysOnlyMs)} (one range, keys only); with values: ${ms(valuesMs)} (one range, printed to /dev/null); keyspace/etcdctl-with-values = ${(scanMs / valuesMs).toFixed(2)}`,
    );
    console.log(
      `  top consumer: ${report.resources[0]?.resource} ${mb(report.resources[0]?.bytes ?? 0)}; largest key ${report.top[0]?.key} (${report.top[0]?.bytes} bytes); leases ${report.leases.total}, ${report.leases.keysWithLease} keys on them; Secrets ${report.secrets.encrypted} encrypted, ${report.secrets.plain} plain`,
    );
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    await removeTempDir(dir);
  }
}
