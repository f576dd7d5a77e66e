/**
 * `npm run bench -- provision`: wall time to provision a 3-member etcd on real systemd hosts
 * (nspawn, over SSH, binaries uploaded) from scratch and to re-run it converged, medians; the
 * converged re-run all hosts at once against one host after another; and where the time of a
 * fresh run goes, per step (median over the hosts and runs).
 */
import { writeFile } from 'node:fs/promises';
import { median, ms } from './benchStats';
import { join } from 'node:path';
import { generateCertificateSet } from '../src/core/pki/set';
import { provisionEtcd } from '../src/core/provision/provision';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from './harness/edgeHosts';
import { makeTempDir, removeTempDir } from './harness/processes';
import { makeKey } from './harness/sshd';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from './harness/lab';

const ADDR = ['127.0.1.91', '127.0.1.92', '127.0.1.93'];
const FRESH_RUNS = Number(process.env['BENCH_FRESH_RUNS'] ?? 3);
const RERUNS = Number(process.env['BENCH_RUNS'] ?? 7);

export async function benchProvision(): Promise<void> {
  const dir = await makeTempDir('k3s-etcd-bench-provision-');
  const key = makeKey(dir, 'id_bench');
  await stageEtcdBinaries(dir);
  const names = ADDR.map((_, i) => `edge-${i + 1}`);
  const file = join(dir, 'k3s-etcd.yaml');
  await writeFile(
    file,
    labInventory({
      cluster: 'bench',
      hosts: names.map((name, i) => ({ name, address: ADDR[i] as string })),
      identityFile: 'id_bench',
    }),
  );
  const cluster = await loadCluster(file);
  await generateCertificateSet(cluster);
  const ssh = labSsh(dir);

  const fresh: number[] = [];
  const stepTimes = new Map<string, number[]>();
  const phaseTimes = new Map<string, number[]>();
  const reruns: number[] = [];
  const sequential: number[] = [];
  for (let run = 0; run < FRESH_RUNS; run++) {
    const hosts = await startEdgeHosts({
      hosts: names.map((name, i) => ({ name, address: ADDR[i] as string })),
      authorizedKeys: [key.publicLine],
    });
    try {
      await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
      const started = new Map<string, number>();
      const t0 = performance.now();
      const r = await provisionEtcd(cluster, {
        dryRun: false,
        ssh,
        onStep: (host, s) => {
          const k = `${host}#${s.n}`;
          if (s.status === 'pending') started.set(k, performance.now());
          else if (started.has(k) && s.status !== 'would-change') {
            const list = stepTimes.get(s.title) ?? [];
            list.push(performance.now() - (started.get(k) ?? 0));
            stepTimes.set(s.title, list);
          }
        },
      });
      fresh.push(performance.now() - t0);
      if (!r.healthy) throw new Error(`fresh provision not healthy: ${r.healthSummary}`);
      for (const h of r.runs) {
        for (const [phase, v] of Object.entries(h.timings)) {
          const list = phaseTimes.get(phase) ?? [];
          list.push(v);
          phaseTimes.set(phase, list);
        }
      }
      if (run === FRESH_RUNS - 1) {
        for (let i = 0; i < RERUNS; i++) {
          let t = performance.now();
          const again = await provisionEtcd(cluster, { dryRun: false, ssh });
          reruns.push(performance.now() - t);
          if (again.runs.some((x) => x.status !== 'unchanged'))
            throw new Error('re-run was not converged');
          t = performance.now();
          for (const n of names) await provisionEtcd(cluster, { dryRun: false, ssh, hosts: [n] });
          sequential.push(performance.now() - t);
        }
      }
    } finally {
      await stopEdgeHosts(hosts);
    }
  }
  await removeTempDir(dir);

  console.log('\nProvisioning etcd on 3 real systemd hosts (nspawn, SSH, binaries uploaded)');
  console.log(`  fresh provision, median of ${FRESH_RUNS}: ${ms(median(fresh))}`);
  console.log(`  converged re-run, median of ${RERUNS}: ${ms(median(reruns))} (goal < 5000 ms)`);
  console.log(
    `  converged re-run, hosts one after another: ${ms(median(sequential))}; parallel/sequential = ${(median(reruns) / median(sequential)).toFixed(2)}`,
  );
  console.log(
    '  fresh run per phase (median per host): ' +
      [...phaseTimes].map(([p, v]) => `${p} ${ms(median(v))}`).join(', '),
  );
  console.log('  fresh run, slowest steps (median per host):');
  for (const [title, v] of [...stepTimes].sort((a, b) => median(b[1]) - median(a[1])).slice(0, 6)) {
    console.log(`    ${ms(median(v)).padStart(8)}  ${title}`);
  }
}
