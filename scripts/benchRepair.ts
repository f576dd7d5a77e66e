/**
 * `npm run bench -- repair`: wall time of "Fix peer URL after IP change" on a 3-member lab of real
 * systemd hosts (nspawn, SSH, etcd provisioned with mutual TLS): from the confirmation to a
 * healthy member whose new peer URL is in the member list, median of several moves of member 2
 * back and forth; the detection before it; and the time per step (goal: under 15 s in all).
 */
import { writeFile } from 'node:fs/promises';
import { median, ms } from './benchStats';
import { join } from 'node:path';
import { generateCertificateSet } from '../src/core/pki/set';
import { provisionEtcd } from '../src/core/provision/provision';
import { diagnosePeerUrl, fixPeerUrl } from '../src/core/repair/peerUrl';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts, type EdgeHost } from './harness/edgeHosts';
import { makeTempDir, removeTempDir } from './harness/processes';
import { makeKey } from './harness/sshd';
import {
  labInventory,
  labSsh,
  loadCluster,
  moveSshd,
  stageEtcdBinaries,
  writeKnownHosts,
} from './harness/lab';

const ADDR = ['127.0.1.95', '127.0.1.96', '127.0.1.97'];
const ALT = '127.0.1.98';
const RUNS = Number(process.env['BENCH_REPAIRS'] ?? 5);

export async function benchRepair(): Promise<void> {
  const dir = await makeTempDir('k3s-etcd-bench-repair-');
  let hosts: EdgeHost[] = [];
  try {
    const key = makeKey(dir, 'id_bench');
    await stageEtcdBinaries(dir);
    const specs = ADDR.map((address, i) => ({ name: `edge-${i + 1}`, address }));
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, [
      ...(await Promise.all(hosts.map((h) => hostKeyLine(h)))),
      await hostKeyLine(hosts[1] as EdgeHost, ALT),
    ]);
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({ cluster: 'bench', hosts: specs, identityFile: 'id_bench' }),
    );
    const ssh = labSsh(dir);
    const first = await loadCluster(file);
    await generateCertificateSet(first);
    const p = await provisionEtcd(first, { dryRun: false, ssh });
    if (!p.healthy) throw new Error(`provisioning not healthy: ${p.healthSummary}`);

    const detect: number[] = [];
    const total: number[] = [];
    const steps = new Map<string, number[]>();
    for (let i = 0; i < RUNS; i++) {
      const to = i % 2 === 0 ? ALT : (ADDR[1] as string);
      await moveSshd(hosts[1] as EdgeHost, to);
      const cluster = await loadCluster(file);
      let t = performance.now();
      const d = await diagnosePeerUrl(cluster, 'edge-2', { newAddress: to, ssh });
      detect.push(performance.now() - t);
      let mark = { title: 'start', at: performance.now() };
      const record = (next: { title: string; at: number }) => {
        const list = steps.get(mark.title) ?? [];
        list.push(next.at - mark.at);
        steps.set(mark.title, list);
        mark = next;
      };
      t = performance.now();
      const r = await fixPeerUrl(cluster, d, {
        ssh,
        inventoryFile: file,
        onLine: (_h, l) => {
          const m = /^(\d)\. (.*?)(?: for | through |:|$)/.exec(l);
          if (m) record({ title: `${m[1]}. ${m[2]}`, at: performance.now() });
        },
      });
      record({ title: 'end', at: performance.now() });
      total.push(performance.now() - t);
      if (!r.healthy) throw new Error(`repair ${i + 1} not healthy: ${r.summary}`);
    }
    steps.delete('start');

    console.log('\nFix peer URL after an IP change, 3 real members (nspawn, SSH, mutual TLS)');
    console.log(`  detection (what is stale, quorum), median of ${RUNS}: ${ms(median(detect))}`);
    console.log(
      `  confirmation to healthy with the new peer URL, median of ${RUNS}: ${ms(median(total))} (goal < 15000 ms); min ${ms(Math.min(...total))}, max ${ms(Math.max(...total))}`,
    );
    console.log('  per step (median):');
    for (const [title, v] of steps) console.log(`    ${ms(median(v)).padStart(8)}  ${title}`);
  } finally {
    await stopEdgeHosts(hosts);
    await removeTempDir(dir);
  }
}
