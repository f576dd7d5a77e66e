/**
 * `npm run bench -- replace`: wall time of `member replace` on a 3-member lab of real systemd
 * hosts (nspawn, SSH, etcd provisioned with mutual TLS): from the confirmation to three healthy
 * members, for a member whose database file was truncated, replaced on its own host (median of
 * several), and once on a spare host; and where the time goes (the replacement host's check,
 * the removal, the learner's provisioning, its promotion).
 */
import { median, ms } from './benchStats';
import { planReplace, replaceMember } from '../src/core/recover/replace';
import type { EdgeHost } from './harness/edgeHosts';
import { loadCluster } from './harness/lab';
import { provisionedLab } from './harness/provisionedLab';

const ADDR = ['127.0.1.131', '127.0.1.132', '127.0.1.133', '127.0.1.134'];
const RUNS = Number(process.env['BENCH_REPLACES'] ?? 3);

/** The phases of one replacement, from its progress lines. */
function phaseOf(line: string): string | undefined {
  if (/^member remove /.test(line)) return 'replacement host checked (dry run), member remove';
  if (/^member add --learner/.test(line))
    return "old data moved aside, the learner's dry run, member add --learner";
  if (/^member promote /.test(line)) return 'learner provisioned, caught up, member promote';
  return undefined;
}

export async function benchReplace(): Promise<void> {
  const lab = await provisionedLab(
    'k3s-etcd-bench-replace-',
    ADDR.map((address, i) => ({
      name: `edge-${i + 1}`,
      address,
      roles: i < 3 ? ['etcd'] : ['k3s-agent'],
    })),
  );
  const { file, hosts, ssh } = lab;
  try {
    const total: number[] = [];
    const phases = new Map<string, number[]>();
    const once = async (member: string, newHost?: string): Promise<number> => {
      const cluster = await loadCluster(file);
      const plan = await planReplace(cluster, member, newHost ? { newHost } : {});
      let mark = performance.now();
      const t0 = mark;
      const note = (phase: string) => {
        const now = performance.now();
        phases.set(phase, [...(phases.get(phase) ?? []), now - mark]);
        mark = now;
      };
      const r = await replaceMember(cluster, plan, {
        ssh,
        inventoryFile: file,
        onLine: (_h, l) => {
          const phase = phaseOf(l);
          if (phase) note(phase);
        },
      });
      note('every member healthy');
      if (!r.healthy) throw new Error(`replacement of ${member} not healthy: ${r.healthSummary}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < RUNS; i++) {
      const dead = hosts[1] as EdgeHost;
      const b = await dead.exec(
        'systemctl stop etcd && truncate -s 4096 /var/lib/etcd/member/snap/db',
      );
      if (b.code !== 0) throw new Error(`could not break edge-2: ${b.stderr}`);
      total.push(await once('edge-2'));
    }
    const samePhases = new Map(phases);
    phases.clear();
    await (hosts[2] as EdgeHost).exec('systemctl stop etcd');
    const elsewhere = await once('edge-3', 'edge-4');

    console.log('\nmember replace, 3 real members (nspawn, SSH, mutual TLS)');
    console.log(
      `  truncated database, replaced on its own host: confirmation to 3 healthy members, median of ${RUNS}: ${ms(median(total))}; min ${ms(Math.min(...total))}, max ${ms(Math.max(...total))}`,
    );
    console.log('  per phase (median):');
    for (const [title, v] of samePhases) console.log(`    ${ms(median(v)).padStart(8)}  ${title}`);
    console.log(
      `  stopped member replaced on a spare host (certificates, inventory): ${ms(elsewhere)}`,
    );
  } finally {
    await lab.stop();
  }
}
