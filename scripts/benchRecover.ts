/**
 * `npm run bench -- recover`: wall time of the recovery from quorum loss on a 3-member lab of
 * real systemd hosts (nspawn, SSH, etcd provisioned with mutual TLS): etcd stopped on members 2
 * and 3 (member 2's data dir moved away, a disk loss), then the detection, and from the
 * confirmation to three healthy members (the survivor's snapshot, the others' data aside, the
 * survivor alone with --force-new-cluster, two learners re-added and promoted); median of
 * several rounds, and the time per phase.
 */
import { detectCluster } from '../src/core/recover/detect';
import { planRecover } from '../src/core/recover/plan';
import { recoverCluster } from '../src/core/recover/run';
import { median, ms } from './benchStats';
import { provisionedLab } from './harness/provisionedLab';

const ADDR = ['127.0.1.156', '127.0.1.157', '127.0.1.158'];
const RUNS = Number(process.env['BENCH_RECOVERS'] ?? 3);

export async function benchRecover(): Promise<void> {
  const lab = await provisionedLab(
    'k3s-etcd-bench-recover-',
    ADDR.map((address, i) => ({ name: `edge-${i + 1}`, address })),
  );
  const { dir, hosts, ssh, cluster } = lab;
  try {
    const detect: number[] = [];
    const total: number[] = [];
    const phases = new Map<string, number[]>();
    for (let i = 0; i < RUNS; i++) {
      await hosts[1]!.exec(`systemctl stop etcd && mv /var/lib/etcd /var/lib/etcd.lost-${i}`);
      await hosts[2]!.exec('systemctl stop etcd');
      let t = performance.now();
      const d = await detectCluster(cluster, { ssh });
      const plan = planRecover(cluster, d, { now: new Date(Date.now() + i * 1000) });
      detect.push(performance.now() - t);
      let mark = { title: '', at: performance.now() };
      const record = (title: string) => {
        const at = performance.now();
        if (mark.title) phases.set(mark.title, [...(phases.get(mark.title) ?? []), at - mark.at]);
        mark = { title, at };
      };
      t = performance.now();
      const r = await recoverCluster(cluster, plan, {
        ssh,
        workspaceDir: dir,
        dryRun: false,
        onPhase: (_p, n, title) => record(`${n}. ${title}`),
      });
      record('');
      if (!r.healthy || r.notRejoined.length > 0)
        throw new Error(`recovery ${i + 1} not healthy: ${r.healthSummary ?? ''}`);
      total.push(r.tookMs ?? performance.now() - t);
    }

    console.log('\nRecovery from quorum loss, 3 real members (nspawn, SSH, mutual TLS)');
    console.log(
      `  detection (status, hosts, a stopped member's database), median of ${RUNS}: ${ms(median(detect))}`,
    );
    console.log(
      `  confirmation to three healthy members, median of ${RUNS}: ${ms(median(total))}; min ${ms(Math.min(...total))}, max ${ms(Math.max(...total))}`,
    );
    console.log('  per phase (median):');
    for (const [title, v] of phases) console.log(`    ${ms(median(v)).padStart(8)}  ${title}`);
  } finally {
    await lab.stop();
  }
}
