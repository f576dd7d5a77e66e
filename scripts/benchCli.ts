/**
 * `npm run bench -- cli`: the one-shot commands as whole processes (Node's start included), each
 * against its etcdctl counterpart on the same real 3-member mutual-TLS etcd, runs alternating
 * (ours, theirs, ours, ...), medians and the ratio; `inventory validate`, `etcdctl-env` and
 * `--help` against `node -e 0`. Goal: every median under 100 ms and at most 4x etcdctl's.
 * Builds the production bundles first (what users run); K3S_ETCD_CLI=/path/to/cli.js measures
 * another build instead (an older one, for a before/after). The code cache (src/cli/codeCache.ts)
 * lives in the bench's own folder and each command runs once before the timed runs (a user's
 * second call onwards); K3S_ETCD_NO_CODE_CACHE=1 measures without it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { admin, etcdWithOurCerts, tlsFlags } from './harness/etcdTls';
import { harnessInventory } from './harness/inventory';
import { makeTempDir, removeTempDir } from './harness/processes';
import type { EtcdCluster } from './harness/etcd';
import { median } from './benchStats';

const root = join(__dirname, '..');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 21);
const GOAL_MS = 100;
const GOAL_RATIO = 4;

interface Pair {
  ours: string[];
  /** The counterpart: etcdctl's query, or Node doing nothing. */
  theirs: { cmd: string; args: string[]; label: string };
}

/** Wall time of one process, which must exit 0 (or `okCodes`). */
function timeOnce(cmd: string, args: string[], cwd: string, base: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  const env = { ...base, XDG_CACHE_HOME: join(cwd, 'cache') };
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

export async function benchCli(): Promise<void> {
  const cli = process.env['K3S_ETCD_CLI'] ?? join(root, 'dist', 'cli.js');
  if (!process.env['K3S_ETCD_CLI'])
    execFileSync(process.execPath, ['esbuild.mjs', '--production'], { cwd: root, stdio: 'ignore' });
  const dir = await makeTempDir('k3s-etcd-bench-cli-');
  const clusters: EtcdCluster[] = [];
  try {
    const pki = join(dir, 'pki');
    const { etcd } = await etcdWithOurCerts(pki, 3, {
      track: (c) => clusters.push(c),
      extra: { samePorts: true },
    });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const tls = admin(pki);
    const ctl = (...q: string[]) => ({
      cmd: '/usr/bin/etcdctl',
      args: ['--endpoints', etcd.endpoints.join(','), ...tlsFlags(tls), ...q, '-w', 'table'],
      label: `etcdctl ${q.join(' ')}`,
    });
    const nothing = { cmd: process.execPath, args: ['-e', '0'], label: 'node -e 0' };
    const pairs: Pair[] = [
      { ours: ['members'], theirs: ctl('member', 'list') },
      { ours: ['health'], theirs: ctl('endpoint', 'health') },
      { ours: ['status'], theirs: ctl('endpoint', 'status') },
      { ours: ['inventory', 'validate'], theirs: nothing },
      { ours: ['etcdctl-env'], theirs: nothing },
      { ours: ['--help'], theirs: nothing },
    ];
    console.log(
      `k3s-etcd one-shot commands, whole process, 3-member TLS etcd ${etcd.endpoints.join(',')}, ` +
        `median of ${RUNS} alternating runs (${cli}):`,
    );
    const extra = process.env['NODE_EXTRA_CA_CERTS'];
    table(
      pairs,
      cli,
      dir,
      process.env,
      extra ? `with NODE_EXTRA_CA_CERTS=${extra} as set here` : '',
    );
    if (extra) {
      // Node reads that file into its root store at every start (node -e 0 pays it too): a
      // setting of this machine, not Node's default; the figures a user without it sees.
      const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
      table(pairs, cli, dir, env, 'without NODE_EXTRA_CA_CERTS (Node as installed)');
    }
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    await removeTempDir(dir);
  }
}

/** One table: every pair timed in `env`, alternating, medians, ratios and the goal. */
function table(pairs: Pair[], cli: string, dir: string, env: NodeJS.ProcessEnv, label: string) {
  if (label) console.log(`${label}:`);
  const rows: string[][] = [];
  let met = true;
  for (const p of pairs) {
    const ours: number[] = [];
    const theirs: number[] = [];
    timeOnce(process.execPath, [cli, ...p.ours], dir, env); // warm: the code cache, the page cache
    for (let i = 0; i < RUNS; i++) {
      ours.push(timeOnce(process.execPath, [cli, ...p.ours], dir, env));
      theirs.push(timeOnce(p.theirs.cmd, p.theirs.args, dir, env));
    }
    const a = median(ours);
    const b = median(theirs);
    const isEtcdctl = p.theirs.cmd.endsWith('etcdctl');
    const ok = a < GOAL_MS && (!isEtcdctl || a / b <= GOAL_RATIO);
    met &&= ok;
    rows.push([
      `k3s-etcd ${p.ours.join(' ')}`,
      `${a.toFixed(0)} ms`,
      p.theirs.label,
      `${b.toFixed(0)} ms`,
      `${(a / b).toFixed(2)}x`,
      ok ? 'met' : 'NOT met',
    ]);
  }
  const head = [
    'command',
    'median',
    'against',
    'median',
    'ratio',
    `goal (< ${GOAL_MS} ms, <= ${GOAL_RATIO}x etcdctl)`,
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows])
    console.log(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`);
  console.log(`Goal: ${met ? 'met' : 'NOT met'}`);
}
