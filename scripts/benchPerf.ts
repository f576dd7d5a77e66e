/**
 * `etcdctl check perf` against our check, same profile, same real cluster: a fresh 3-member etcd
 * serving mutual TLS with our generated certificates (admin client certificate) per load;
 * etcdctl first, then compaction and defragmentation, then ours. Both run 60 s (etcdctl has no
 * duration flag), so each load costs about two and a half minutes.
 *
 * Prints throughput (etcdctl's `int(RPS)+1` for both), slowest, stddev, verdicts, client CPU per
 * write, and ours/etcdctl. Goals: at l our throughput >= etcdctl's; at s and m the same verdict
 * and throughput within 5%.
 *
 *   node --import tsx scripts/benchPerf.ts [s] [m] [l] [xl]     (default: s m l)
 */
import { spawn } from 'node:child_process';
import { compactAndDefrag, runPerfCheck } from '../src/core/perf/perf';
import { isPerfLoad } from '../src/core/perf/stats';
import { type PerfLoad, type PerfResult } from '../src/shared/perfTypes';
import { makeTempDir, removeTempDir } from './harness/processes';
import { etcdctl, type EtcdCluster } from './harness/etcd';
import { admin, etcdWithOurCerts } from './harness/etcdTls';

interface Figures {
  verdict: 'PASS' | 'FAIL';
  /** As etcdctl prints it: int(RPS)+1. */
  writesPerSec: number;
  slowestSec: number;
  stddevSec: number;
  errors: boolean;
  /** User + system CPU of the client per successful write, in µs (NaN if unknown). */
  cpuPerWriteUs: number;
  wallSec: number;
}

/** The environment without ETCD*_ settings and proxies (as the test harness does). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(ETCD|https?_proxy$|grpc_proxy$)/i.test(k)) env[k] = v;
  return { ...env, ETCDCTL_API: '3' };
}

/** Runs `etcdctl check perf`, timed by bash (`TIMEFORMAT='%U %S'` gives its CPU). */
function etcdctlCheckPerf(
  etcd: EtcdCluster,
  dir: string,
  load: PerfLoad,
): Promise<{ code: number; stdout: string; cpuSec: number; wallSec: number }> {
  const a = admin(dir);
  const args = [
    '-c',
    `TIMEFORMAT='%U %S'; time "$@"`,
    'bash',
    '/usr/bin/etcdctl',
    `--endpoints=${etcd.endpoints.join(',')}`,
    `--cacert=${a.caFile}`,
    `--cert=${a.certFile}`,
    `--key=${a.keyFile}`,
    'check',
    'perf',
    `--load=${load}`,
  ];
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', args, {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const times = /^([\d.]+) ([\d.]+)\s*$/m.exec(stderr);
      resolve({
        code: code ?? 128,
        stdout,
        cpuSec: times ? Number(times[1]) + Number(times[2]) : NaN,
        wallSec: (performance.now() - t0) / 1000,
      });
      if (code !== 0 && code !== 1) process.stderr.write(stderr);
    });
  });
}

function parseEtcdctl(stdout: string, cpuSec: number, wallSec: number): Figures {
  // The progress bar has no line end of its own: the first verdict line can follow it on the
  // same line when stdout is not a terminal, so split before each verdict line too.
  const lines = stdout
    .replace(/(PASS|FAIL)(?=: )/g, '\n$1')
    .split(/[\r\n]+/)
    .map((l) => l.trim());
  const num = (re: RegExp): number => {
    for (const l of lines) {
      const m = re.exec(l);
      if (m) return Number(m[1]);
    }
    throw new Error(`etcdctl check perf printed no ${re.source}:\n${stdout}`);
  };
  const writesPerSec = num(/^(?:PASS: Throughput is|FAIL: Throughput too low:) (\d+) writes\/s$/);
  return {
    verdict: lines.includes('PASS') ? 'PASS' : 'FAIL',
    writesPerSec,
    slowestSec: num(/^(?:PASS: )?Slowest request took(?: too long:)? ([\d.]+)s$/),
    stddevSec: num(/^(?:PASS: Stddev is|Stddev too high:) ([\d.]+)s$/),
    errors: lines.includes('FAIL: too many errors'),
    // etcdctl's RPS is int+1; 60 s of it is close enough to count its writes.
    cpuPerWriteUs: (cpuSec * 1e6) / Math.max(1, (writesPerSec - 1) * 60),
    wallSec,
  };
}

function ours(r: PerfResult, cpuUs: number, wallSec: number): Figures {
  return {
    verdict: r.pass ? 'PASS' : 'FAIL',
    writesPerSec: Math.trunc(r.rps) + 1,
    slowestSec: r.slowestMs / 1000,
    stddevSec: r.stddevMs / 1000,
    errors: r.errors > 0,
    cpuPerWriteUs: cpuUs / Math.max(1, r.writes),
    wallSec,
  };
}

/** Compacts at the current revision and defragments every member, so the next run starts small. */
async function compactAll(etcd: EtcdCluster, dir: string): Promise<void> {
  const a = admin(dir);
  const rev = await currentRevision(etcd, dir);
  const r = await compactAndDefrag(etcd.endpoints, a, rev, { timeoutMs: 180_000 });
  const bad = r.defragmented.filter((d) => !d.ok);
  if (!r.compacted || bad.length > 0)
    console.error(
      `warning: compaction ${r.compacted ? 'ok' : `failed (${r.compactError})`}, defragmentation failed on ${bad.map((d) => `${d.endpoint} (${d.error})`).join(', ') || 'none'}`,
    );
}

async function currentRevision(etcd: EtcdCluster, dir: string): Promise<string> {
  const r = await etcdctl(etcd, ['get', 'none', '-w', 'json'], { tls: admin(dir) });
  if (r.code !== 0) throw new Error(`etcdctl get failed: ${r.stderr}`);
  return String((JSON.parse(r.stdout) as { header: { revision: number } }).header.revision);
}

const secs = (x: number) => `${x.toFixed(6)}s`;

function row(load: string, tool: string, f: Figures): string {
  return [
    load.padEnd(4),
    tool.padEnd(9),
    f.verdict.padEnd(7),
    String(f.writesPerSec).padStart(8),
    secs(f.slowestSec).padStart(10),
    secs(f.stddevSec).padStart(10),
    (Number.isFinite(f.cpuPerWriteUs) ? `${f.cpuPerWriteUs.toFixed(0)} µs` : '?').padStart(10),
    f.errors ? 'errors' : '',
  ].join('  ');
}

function goal(load: PerfLoad, theirs: Figures, mine: Figures): string {
  const ratio = mine.writesPerSec / theirs.writesPerSec;
  if (load === 'l' || load === 'xl')
    return `goal: throughput >= etcdctl's: ${ratio >= 1 ? 'met' : 'NOT met'}`;
  const same = mine.verdict === theirs.verdict;
  const close = Math.abs(ratio - 1) <= 0.05;
  return `goal: same verdict (${same ? 'yes' : 'no'}) and throughput within 5% (${close ? 'yes' : 'no'}): ${same && close ? 'met' : 'NOT met'}`;
}

export async function benchPerf(loads: PerfLoad[]): Promise<void> {
  console.log(
    `check perf: etcdctl 3.4.23 vs k3s-etcd, 60 s each, on a fresh 3-member mutual-TLS etcd per load (same box)`,
  );
  console.log(
    ['load', 'tool     ', 'verdict', 'writes/s', '   slowest', '    stddev', ' CPU/write'].join(
      '  ',
    ),
  );
  for (const load of loads) {
    const dir = await makeTempDir('k3s-etcd-bench-perf-');
    let etcd: EtcdCluster | undefined;
    try {
      ({ etcd } = await etcdWithOurCerts(dir, 3));
      const ctl = await etcdctlCheckPerf(etcd, dir, load);
      if (ctl.code !== 0 && ctl.code !== 1)
        throw new Error(`etcdctl check perf exited ${ctl.code}:\n${ctl.stdout}`);
      const theirs = parseEtcdctl(ctl.stdout, ctl.cpuSec, ctl.wallSec);
      console.log(row(load, 'etcdctl', theirs));

      await compactAll(etcd, dir);

      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await runPerfCheck({
        endpoints: etcd.endpoints,
        tls: admin(dir),
        load,
        durationSec: 60,
      });
      const cpu = process.cpuUsage(cpu0);
      const mine = ours(r, cpu.user + cpu.system, (performance.now() - t0) / 1000);
      if (!r.cleanedUp) console.error(`warning: our clean-up failed: ${r.cleanupError}`);
      console.log(row(load, 'k3s-etcd', mine));
      console.log(
        `      ours/etcdctl throughput ${(mine.writesPerSec / theirs.writesPerSec).toFixed(3)}; ${goal(load, theirs, mine)}`,
      );
    } finally {
      await etcd?.stop();
      await removeTempDir(dir);
    }
  }
}

if (require.main === module) {
  const asked = process.argv.slice(2);
  const loads = asked.length > 0 ? asked : ['s', 'm', 'l'];
  const bad = loads.filter((l) => !isPerfLoad(l));
  if (bad.length > 0) {
    console.error(`unknown load(s): ${bad.join(', ')} (s, m, l, xl)`);
    process.exitCode = 2;
  } else {
    benchPerf(loads as PerfLoad[]).catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
  }
}
