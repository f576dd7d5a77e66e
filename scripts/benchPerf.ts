/**
 * `etcdctl check perf` against `k3s-etcd perf` (dist/cli.js, built first), same profile, same
 * real cluster: a fresh 3-member etcd serving mutual TLS with our generated certificates (admin
 * client certificate) per load, then rounds in alternating order (etcdctl first in odd rounds,
 * ours first in even ones), with compaction and defragmentation before every run. Both run
 * 60 s (etcdctl has no duration flag) and both are whole processes timed by bash, so CPU per
 * write (user + system CPU of the process / writes) counts the same things for both: start,
 * TLS, the load, the clean-up.
 *
 * Prints every run, then per load the medians (throughput as etcdctl's `int(RPS)+1`, slowest,
 * CPU per write) and ours/etcdctl. Goals: CPU per write at or below etcdctl's, the slowest
 * within 1.5x etcdctl's at s and m, throughput at or above etcdctl's (within 1% at s and m,
 * where both are held to the target rate).
 *
 *   node --import tsx scripts/benchPerf.ts [s] [m] [l] [xl]     (default: s m l)
 *   BENCH_PERF_ROUNDS=3 (default); BENCH_PERF_BASELINE=/other/checkout/dist/cli.js adds that
 *   build as a third tool in every round (before/after figures from the same runs).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compactAndDefrag } from '../src/core/perf/perf';
import { isPerfLoad } from '../src/core/perf/stats';
import { type PerfLoad, type PerfResult } from '../src/shared/perfTypes';
import { median } from './benchStats';
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

/** Runs a command timed by bash (`TIMEFORMAT='%U %S'` gives its CPU). */
function timed(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string; cpuSec: number; wallSec: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `TIMEFORMAT='%U %S'; time "$@"`, 'bash', cmd, ...args], {
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
        stderr,
        cpuSec: times ? Number(times[1]) + Number(times[2]) : NaN,
        wallSec: (performance.now() - t0) / 1000,
      });
      if (code !== 0 && code !== 1) process.stderr.write(stderr);
    });
  });
}

function tlsArgs(dir: string): string[] {
  const a = admin(dir);
  return [`--cacert=${a.caFile}`, `--cert=${a.certFile}`, `--key=${a.keyFile}`];
}

async function etcdctlCheckPerf(etcd: EtcdCluster, dir: string, load: PerfLoad): Promise<Figures> {
  const args = [`--endpoints=${etcd.endpoints.join(',')}`, ...tlsArgs(dir)];
  const r = await timed('/usr/bin/etcdctl', [...args, 'check', 'perf', `--load=${load}`]);
  if (r.code !== 0 && r.code !== 1)
    throw new Error(`etcdctl check perf exited ${r.code}:\n${r.stdout}`);
  return parseEtcdctl(r.stdout, r.cpuSec, r.wallSec);
}

/** `k3s-etcd perf` from a built cli.js, as a user runs it (preflight, load, clean-up). */
async function ourCheckPerf(
  cli: string,
  etcd: EtcdCluster,
  dir: string,
  load: PerfLoad,
): Promise<Figures> {
  const args = [cli, 'perf', `--load=${load}`, `--endpoints=${etcd.endpoints.join(',')}`];
  const r = await timed(process.execPath, [...args, ...tlsArgs(dir), '--json']);
  if ((r.code !== 0 && r.code !== 1) || !r.stdout.trim())
    throw new Error(`k3s-etcd perf exited ${r.code} without a result:\n${r.stderr}`);
  const result = JSON.parse(r.stdout) as PerfResult;
  if (!result.cleanedUp) console.error(`warning: clean-up failed: ${result.cleanupError}`);
  return ours(result, r.cpuSec * 1e6, r.wallSec);
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
const us = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} µs` : '?');

function row(load: string, tool: string, f: Figures): string {
  return [
    load.padEnd(4),
    tool.padEnd(9),
    f.verdict.padEnd(7),
    String(f.writesPerSec).padStart(8),
    secs(f.slowestSec).padStart(10),
    secs(f.stddevSec).padStart(10),
    us(f.cpuPerWriteUs).padStart(10),
    f.errors ? 'errors' : '',
  ].join('  ');
}

interface Medians {
  writesPerSec: number;
  slowestSec: number;
  cpuPerWriteUs: number;
}

const medians = (runs: Figures[]): Medians => ({
  writesPerSec: median(runs.map((f) => f.writesPerSec)),
  slowestSec: median(runs.map((f) => f.slowestSec)),
  cpuPerWriteUs: median(runs.map((f) => f.cpuPerWriteUs)),
});

/** The goals of issue 28 for one tool's medians against etcdctl's. */
function goals(load: PerfLoad, theirs: Medians, mine: Medians): string {
  const cpu = mine.cpuPerWriteUs / theirs.cpuPerWriteUs;
  const slow = mine.slowestSec / theirs.slowestSec;
  const tput = mine.writesPerSec / theirs.writesPerSec;
  const held = load === 's' || load === 'm';
  const yes = (b: boolean) => (b ? 'met' : 'NOT met');
  return [
    `CPU/write ${cpu.toFixed(2)}x (<= 1: ${yes(cpu <= 1)})`,
    `slowest ${slow.toFixed(2)}x${held ? ` (<= 1.5: ${yes(slow <= 1.5)})` : ''}`,
    `throughput ${tput.toFixed(3)}x (${held ? '>= 0.99' : '>= 1'}: ${yes(tput >= (held ? 0.99 : 1))})`,
  ].join(', ');
}

const ROOT = join(__dirname, '..');

export async function benchPerf(loads: PerfLoad[]): Promise<void> {
  const rounds = Number(process.env['BENCH_PERF_ROUNDS'] ?? 3);
  execFileSync(process.execPath, [join(ROOT, 'esbuild.mjs')], { cwd: ROOT, stdio: 'ignore' });
  const tools: Array<{ name: string; cli?: string }> = [
    { name: 'etcdctl' },
    { name: 'k3s-etcd', cli: join(ROOT, 'dist', 'cli.js') },
  ];
  const baseline = process.env['BENCH_PERF_BASELINE'];
  if (baseline) {
    readFileSync(baseline); // fails early when missing
    tools.push({ name: 'before', cli: baseline });
  }
  console.log(
    `check perf: etcdctl 3.4.23 vs k3s-etcd perf (whole processes, 60 s each), ${rounds} alternating ` +
      `rounds on a fresh 3-member mutual-TLS etcd per load (same box)`,
  );
  console.log(
    ['load', 'tool     ', 'verdict', 'writes/s', '   slowest', '    stddev', ' CPU/write'].join(
      '  ',
    ),
  );
  for (const load of loads) {
    const dir = await makeTempDir('k3s-etcd-bench-perf-');
    let etcd: EtcdCluster | undefined;
    const runs = new Map<string, Figures[]>(tools.map((t) => [t.name, []]));
    try {
      // xl writes up to 900,000 keys (about 2.3 GB before compaction) in 60 s: with etcd's
      // 2 GiB default quota our check refuses to start (it would raise NOSPACE) where etcdctl
      // runs into it, so the xl cluster gets etcd's largest advised quota, 8 GiB.
      ({ etcd } = await etcdWithOurCerts(
        dir,
        3,
        load === 'xl' ? { extra: { extraArgs: [`--quota-backend-bytes=${8 * 1024 ** 3}`] } } : {},
      ));
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? tools : [...tools].reverse();
        for (const tool of order) {
          await compactAll(etcd, dir);
          const f = tool.cli
            ? await ourCheckPerf(tool.cli, etcd, dir, load)
            : await etcdctlCheckPerf(etcd, dir, load);
          runs.get(tool.name)?.push(f);
          console.log(row(load, tool.name, f));
        }
      }
      const theirs = medians(runs.get('etcdctl') ?? []);
      for (const tool of tools) {
        const m = medians(runs.get(tool.name) ?? []);
        console.log(
          `  median ${tool.name.padEnd(9)} ${String(m.writesPerSec).padStart(6)} writes/s  slowest ` +
            `${(m.slowestSec * 1000).toFixed(1)} ms  CPU/write ${us(m.cpuPerWriteUs)}` +
            (tool.cli ? `; vs etcdctl: ${goals(load, theirs, m)}` : ''),
        );
      }
    } finally {
      await etcd?.stop();
      await removeTempDir(dir);
    }
  }
}

/** The loads asked for (`npm run bench -- perf s m`), s m l when none; throws on an unknown one. */
export function perfLoads(asked: string[]): PerfLoad[] {
  const loads = asked.length > 0 ? asked : ['s', 'm', 'l'];
  const bad = loads.filter((l) => !isPerfLoad(l));
  if (bad.length > 0) throw new Error(`unknown load(s): ${bad.join(', ')} (s, m, l, xl)`);
  return loads as PerfLoad[];
}

if (require.main === module) {
  Promise.resolve()
    .then(() => benchPerf(perfLoads(process.argv.slice(2))))
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
