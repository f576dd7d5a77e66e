/**
 * `npm run bench -- rolling`: a change that restarts all 3 members of a live etcd on real
 * systemd hosts (nspawn, SSH, mutual TLS), rolled one member at a time while a client writes to
 * every endpoint: the time from the run's start to the last member caught up, and the writes per
 * second the client saw during the roll against its rate in the seconds before it. The change
 * toggles etcd.metricsPort (the env file changes on every member), several times; medians.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectionFor } from '../src/core/etcd/connection';
import { generateCertificateSet } from '../src/core/pki/set';
import { provisionEtcd } from '../src/core/provision/provision';
import { median, ms } from './benchStats';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts, type EdgeHost } from './harness/edgeHosts';
import { makeTempDir, removeTempDir } from './harness/processes';
import { makeKey } from './harness/sshd';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from './harness/lab';
import { startWriter } from './harness/writer';

const ADDR = ['127.0.1.56', '127.0.1.57', '127.0.1.58'];
const RUNS = Number(process.env['BENCH_ROLLS'] ?? 3);
const BASELINE_MS = 5000;

export async function benchRolling(): Promise<void> {
  const dir = await makeTempDir('k3s-etcd-bench-rolling-');
  let hosts: EdgeHost[] = [];
  try {
    const key = makeKey(dir, 'id_bench');
    await stageEtcdBinaries(dir);
    const specs = ADDR.map((address, i) => ({ name: `edge-${i + 1}`, address }));
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    const file = join(dir, 'k3s-etcd.yaml');
    const base = labInventory({ cluster: 'bench', hosts: specs, identityFile: 'id_bench' });
    const load = async (metrics: boolean) => {
      await writeFile(
        file,
        metrics
          ? base.replace('uploadPath: etcd-bin }', 'uploadPath: etcd-bin, metricsPort: 2381 }')
          : base,
      );
      return loadCluster(file);
    };
    const ssh = labSsh(dir);
    const first = await load(false);
    await generateCertificateSet(first);
    const p = await provisionEtcd(first, { dryRun: false, ssh });
    if (!p.healthy) throw new Error(`provisioning not healthy: ${p.healthSummary}`);
    const conn = await connectionFor(first);

    const total: number[] = [];
    const before: number[] = [];
    const during: number[] = [];
    const gaps: number[] = [];
    let failed = 0;
    const retried: Record<string, number> = {};
    for (let i = 0; i < RUNS; i++) {
      const cluster = await load(i % 2 === 0);
      const writer = await startWriter({ endpoints: conn.endpoints, tls: conn.tls });
      try {
        await new Promise((r) => setTimeout(r, BASELINE_MS));
        const t0 = performance.now();
        const r = await provisionEtcd(cluster, { dryRun: false, ssh });
        const t1 = performance.now();
        if (r.rolling?.mode !== 'rolling' || r.rolling.order.length !== 3)
          throw new Error(`run ${i + 1}: not a rolling change of 3 members`);
        const bad = r.runs.find((x) => x.status !== 'changed');
        if (bad) throw new Error(`run ${i + 1}: ${bad.host} ${bad.status}: ${bad.error?.message}`);
        total.push(t1 - t0);
        before.push(writer.rate(t0 - BASELINE_MS, t0));
        during.push(writer.rate(t0, t1));
      } finally {
        const s = await writer.stop();
        failed += s.failed;
        gaps.push(s.maxGapMs);
        for (const [k, v] of Object.entries(s.retried)) retried[k] = (retried[k] ?? 0) + v;
      }
    }
    const b = median(before);
    const d = median(during);
    console.log(
      '\nRolling change of 3 real members (nspawn, SSH, mutual TLS), a client writing to all endpoints',
    );
    console.log(
      `  roll (metricsPort toggled: env file on every member; followers, then the leader after move-leader), median of ${RUNS}: ${ms(median(total))}; min ${ms(Math.min(...total))}, max ${ms(Math.max(...total))}`,
    );
    console.log(
      `  client writes/s: ${b.toFixed(0)} in the ${BASELINE_MS / 1000} s before, ${d.toFixed(0)} during the roll (${((d / b) * 100).toFixed(0)} %); longest pause between two writes ${ms(median(gaps))} (median); failed writes ${failed}; retried on another endpoint ${JSON.stringify(retried)}`,
    );
  } finally {
    await stopEdgeHosts(hosts);
    await removeTempDir(dir);
  }
}
