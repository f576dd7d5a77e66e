/**
 * The performance check against a REAL 3-member etcd serving mutual TLS with our generated
 * certificates (admin client certificate), run from source: the load goes to a worker thread
 * started through tsx. Checks etcdctl's verdict lines, the clean-up (with etcdctl), cancel,
 * the refusal of a used prefix, and that the load does not run on the caller's thread.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatPerfReport } from '../../src/core/perf/reports';
import { PerfError, runPerfCheck } from '../../src/core/perf/perf';
import { perfVerdict } from '../../src/core/perf/stats';
import { type PerfProgress } from '../../src/shared/perfTypes';
import { PutEncoder } from '../../src/core/perf/connections';
import { PERF_COMMANDS } from '../../src/cli/perf';
import type { CliIO, RunContext } from '../../src/cli/context';
import { UsageError } from '../../src/cli/context';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { etcdctl, type EtcdCluster } from '../../scripts/harness/etcd';
import { admin, etcdWithOurCerts } from './harness/tlsCluster';

const PREFIX = '/etcdctl-check-perf/';

let dir = '';
let etcd: EtcdCluster | undefined;

before(async () => {
  dir = await makeTempDir('k3s-etcd-perf-');
  ({ etcd } = await etcdWithOurCerts(dir, 3));
});
after(async () => {
  await etcd?.stop();
  if (dir) await removeTempDir(dir);
});

function cluster(): EtcdCluster {
  assert.ok(etcd, 'the etcd cluster did not start');
  return etcd;
}

/** Keys under `prefix`, as etcdctl (with the admin certificate) sees them. */
async function keysUnder(prefix: string): Promise<string> {
  const r = await etcdctl(cluster(), ['get', prefix, '--prefix', '--keys-only'], {
    tls: admin(dir),
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** The store's current revision, from etcdctl. */
async function revision(): Promise<number> {
  const r = await etcdctl(cluster(), ['get', 'none', '-w', 'json'], { tls: admin(dir) });
  assert.equal(r.code, 0, r.stderr);
  return Number((JSON.parse(r.stdout) as { header: { revision: number } }).header.revision);
}

const THROUGHPUT = /^(PASS: Throughput is|FAIL: Throughput too low:) \d+ writes\/s$/;
const SLOWEST = /^(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s$/;
const STDDEV = /^(PASS: Stddev is|Stddev too high:) \d+\.\d{6}s$/;

describe('check perf on a real mutual-TLS etcd', () => {
  it('profile s for 5 s passes with etcdctl-shaped lines and leaves no key behind', async () => {
    const rev0 = await revision();
    const progress: PerfProgress[] = [];
    const phases: string[] = [];
    const r = await runPerfCheck({
      endpoints: cluster().endpoints,
      tls: admin(dir),
      load: 's',
      durationSec: 5,
      onProgress: (p) => progress.push(p),
      onPhase: (p) => phases.push(p),
    });
    const summary = JSON.stringify({ ...r, seconds: r.seconds.length });
    assert.equal(r.pass, true, summary);
    assert.equal(r.cancelled, false);
    assert.equal(r.errors, 0, summary);
    assert.ok(Math.abs(r.rps - 150) <= 15, `throughput ${r.rps} not within 10% of 150`);
    assert.ok(r.slowestMs <= 500 && r.stddevMs <= 100, summary);
    assert.ok(r.fastestMs > 0 && r.fastestMs <= r.p50Ms && r.p50Ms <= r.p99Ms, summary);
    assert.ok(r.p99Ms <= r.slowestMs && r.avgMs > 0, summary);
    assert.equal(r.lines.length, 4, r.lines.join('\n'));
    assert.match(r.lines[0] ?? '', /^PASS: Throughput is \d+ writes\/s$/);
    assert.equal(r.lines[0], `PASS: Throughput is ${Math.trunc(r.rps) + 1} writes/s`);
    assert.equal(r.lines[1], `PASS: Slowest request took ${(r.slowestMs / 1000).toFixed(6)}s`);
    assert.equal(r.lines[2], `PASS: Stddev is ${(r.stddevMs / 1000).toFixed(6)}s`);
    assert.equal(r.lines[3], 'PASS');

    // One report per second, in order, each with about the target rate.
    assert.equal(r.seconds.length, 5);
    assert.deepEqual(
      progress.map((p) => p.second),
      [1, 2, 3, 4, 5],
    );
    assert.ok(progress.every((p) => p.totalMs === 5000 && p.errorsSoFar === 0));
    assert.ok(
      progress.every((p, i) => p.elapsedMs > i * 1000 && p.elapsedMs <= (i + 1) * 1000),
      JSON.stringify(progress),
    );
    assert.ok(
      r.seconds.every((s) => s.writes >= 120 && s.writes <= 180 && s.maxMs >= s.p99Ms),
      JSON.stringify(r.seconds),
    );
    assert.equal(
      r.seconds.reduce((n, s) => n + s.writes, 0),
      r.writes,
    );
    assert.deepEqual(phases, ['writing', 'cleaning']);

    // The writes really landed in etcd, and the clean-up took every one of them away.
    assert.equal(r.cleanedUp, true);
    assert.equal(r.deletedKeys, r.writes);
    assert.ok(r.deleteRevision !== undefined);
    assert.equal(
      Number(r.deleteRevision),
      rev0 + r.writes + 1,
      'one revision per put + the delete',
    );
    assert.equal(await keysUnder(PREFIX), '', 'keys left under the prefix');
    assert.match(formatPerfReport(r), /^# etcd performance check: PASS$/m);
  });

  it('a cancel mid-run stops the load and still deletes the prefix', async () => {
    const abort = new AbortController();
    const t0 = performance.now();
    const r = await runPerfCheck({
      endpoints: cluster().endpoints,
      tls: admin(dir),
      load: 'm',
      durationSec: 60,
      signal: abort.signal,
      onProgress: (p) => {
        if (p.second === 2) abort.abort();
      },
    });
    const took = performance.now() - t0;
    assert.equal(r.cancelled, true);
    assert.equal(r.pass, false);
    assert.deepEqual(r.lines, [], 'etcdctl prints no verdict after an interrupt');
    assert.ok(took < 20_000, `took ${took} ms after a cancel at ~2 s`);
    assert.ok(r.writes > 500, `only ${r.writes} writes before the cancel`);
    assert.ok(r.seconds.length >= 2 && r.seconds.length <= 4, JSON.stringify(r.seconds));
    assert.equal(r.cleanedUp, true, r.cleanupError);
    assert.equal(r.deletedKeys, r.writes);
    assert.equal(await keysUnder(PREFIX), '', 'keys left under the prefix after the cancel');
    assert.match(formatPerfReport(r), /^# etcd performance check: CANCELLED$/m);
  });

  it('refuses a prefix that already holds a key, and leaves that key alone', async () => {
    const prefix = '/perf-test-occupied/';
    const put = await etcdctl(cluster(), ['put', `${prefix}mine`, 'keep me'], { tls: admin(dir) });
    assert.equal(put.code, 0, put.stderr);
    const rev0 = await revision();
    let started = false;
    await assert.rejects(
      runPerfCheck({
        endpoints: cluster().endpoints,
        tls: admin(dir),
        load: 's',
        durationSec: 2,
        prefix,
        onPhase: () => (started = true),
      }),
      (e: unknown) =>
        e instanceof PerfError &&
        e.reason === 'prefix-not-empty' &&
        /Prefix "\/perf-test-occupied\/" already holds keys \(for example "\/perf-test-occupied\/mine"\)/.test(
          e.message,
        ) &&
        /etcdctl del --prefix \/perf-test-occupied\//.test(e.message),
    );
    assert.equal(started, false);
    const get = await etcdctl(cluster(), ['get', `${prefix}mine`, '--print-value-only'], {
      tls: admin(dir),
    });
    assert.equal(get.stdout.trim(), 'keep me');
    assert.equal(await revision(), rev0, 'nothing was written or deleted');
  });

  it('no answering endpoint, or a missing TLS file, is a clear error and writes nothing', async () => {
    const rev0 = await revision();
    await assert.rejects(
      runPerfCheck({ endpoints: ['https://127.0.0.1:1'], tls: admin(dir), load: 's' }),
      (e: unknown) =>
        e instanceof PerfError &&
        e.reason === 'unreachable' &&
        /No etcd endpoint answered.*\n.*127\.0\.0\.1:1: connection refused/.test(e.message),
    );
    await assert.rejects(
      runPerfCheck({
        endpoints: cluster().endpoints,
        tls: { ...admin(dir), certFile: `${dir}/client/nobody.pem` },
        load: 's',
      }),
      (e: unknown) =>
        e instanceof PerfError &&
        e.reason === 'tls-files-missing' &&
        e.code === 'certs-missing' &&
        /cannot read .*nobody\.pem: no such file/.test(e.message),
    );
    await assert.rejects(
      runPerfCheck({ endpoints: cluster().endpoints, load: 's', durationSec: 0 }),
      (e: unknown) => e instanceof PerfError && e.reason === 'invalid-options',
    );
    assert.equal(await revision(), rev0);
  });

  it('runs the load off the calling thread: timers keep firing, a blocked caller costs nothing', async () => {
    // (1) An m run (1000 writes/s): a 10 ms interval on this thread stays on time.
    let maxLag = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last - 10);
      last = now;
    }, 10);
    let m;
    try {
      m = await runPerfCheck({
        endpoints: cluster().endpoints,
        tls: admin(dir),
        load: 'm',
        durationSec: 4,
      });
    } finally {
      clearInterval(timer);
    }
    assert.equal(m.errors, 0);
    assert.ok(m.writes > 3000, `${m.writes} writes`);
    assert.ok(maxLag < 200, `event-loop lag on the calling thread reached ${maxLag.toFixed(0)} ms`);

    // (2) Blocking this thread for 1.5 s in the middle of an s run: on this thread the writes
    // would stall (and the slowest would exceed 1.5 s); in the worker they go on.
    let blocked = false;
    const s = await runPerfCheck({
      endpoints: cluster().endpoints,
      tls: admin(dir),
      load: 's',
      durationSec: 5,
      onProgress: (p) => {
        if (p.second !== 1 || blocked) return;
        blocked = true;
        const until = performance.now() + 1500;
        while (performance.now() < until) {
          // busy: this thread does nothing else for 1.5 s
        }
      },
    });
    assert.equal(blocked, true);
    assert.ok(s.slowestMs < 1000, `slowest ${s.slowestMs} ms: the load waited for this thread`);
    assert.ok(
      s.seconds.slice(1, 3).every((x) => x.writes >= 120),
      `writes per second: ${s.seconds.map((x) => x.writes).join(', ')}`,
    );
    assert.equal(s.cleanedUp, true);
  });

  it('`k3s-etcd perf`: progress on stderr, etcdctl lines on stdout, exit 0 on PASS', async () => {
    const perf = PERF_COMMANDS.find((c) => c.name === 'perf');
    assert.ok(perf);
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      interactive: false,
      cwd: dir,
      ask: async () => '',
      askSecret: async () => '',
    };
    const a = admin(dir);
    const ctx = (values: RunContext['values']): RunContext => ({
      global: { inventory: `${dir}/none.yaml`, cluster: undefined, json: false, yes: false },
      values: {
        endpoints: cluster().endpoints.join(','),
        cacert: a.caFile,
        cert: a.certFile,
        key: a.keyFile,
        ...values,
      },
      args: [],
      io,
    });
    const code = await perf.run(ctx({ load: 'small', duration: '3', 'auto-compact': true }));
    assert.equal(code, 0, err.join('\n'));
    assert.equal(out.length, 6, out.join('\n'));
    assert.match(out[0] ?? '', /^Compacting with revision \d+$/);
    assert.match(out[1] ?? '', /^Compacted with revision \d+$/);
    assert.match(out[2] ?? '', THROUGHPUT);
    assert.match(out[3] ?? '', SLOWEST);
    assert.match(out[4] ?? '', STDDEV);
    assert.equal(out[5], 'PASS');
    const progress = err.filter((l) => /^\[\s*\d+\/3 s\]\s+\d+ writes\/s/.test(l));
    assert.equal(progress.length, 3, err.join('\n'));
    assert.equal(await keysUnder(PREFIX), '');
    // Compacted but not defragmented: the file keeps the space, and the CLI says how to free it.
    const said = err.join('\n');
    assert.match(
      said,
      /The check's writes still take space: the database file is [\d.]+ [kM]B( with only [\d.]+ [kM]?B of it in use)?, and every snapshot/,
    );
    assert.match(said, /^ {2}export ETCDCTL_ENDPOINTS=https:\/\/127\./m);
    assert.match(said, /^ {2}etcdctl defrag$/m);
    assert.doesNotMatch(said, /etcdctl compact/);
    assert.match(said, /--auto-compact --auto-defrag next time/);

    await assert.rejects(perf.run(ctx({ load: 'huge' })), UsageError);
    await assert.rejects(perf.run(ctx({ duration: '0' })), UsageError);
  });
});

describe("etcdctl's arithmetic and workload", () => {
  it('prints the verdict lines as etcdctl 3.4/3.5 do, failures included', () => {
    assert.deepEqual(
      perfVerdict({ rps: 149.97, target: 150, slowestMs: 17.2, stddevMs: 2.5, errorDist: {} }),
      {
        pass: true,
        lines: [
          'PASS: Throughput is 150 writes/s',
          'PASS: Slowest request took 0.017200s',
          'PASS: Stddev is 0.002500s',
          'PASS',
        ],
      },
    );
    const fail = perfVerdict({
      rps: 3375.4,
      target: 8000,
      slowestMs: 580,
      stddevMs: 120.5,
      errorDist: { 'etcdserver: request timed out': 3 },
    });
    assert.equal(fail.pass, false);
    assert.deepEqual(fail.lines, [
      'FAIL: too many errors',
      'FAIL: ERROR(etcdserver: request timed out) -> 3',
      'FAIL: Throughput too low: 3376 writes/s',
      'Slowest request took too long: 0.580000s',
      'Stddev too high: 0.120500s',
      'FAIL',
    ]);
    // Exactly 90% of the target fails (RPS/limit must be above 0.9).
    assert.equal(
      perfVerdict({ rps: 135, target: 150, slowestMs: 1, stddevMs: 1, errorDist: {} }).pass,
      false,
    );
  });

  it("encodes etcdctl's keys: prefix + 256 bytes holding the varint of a random int63", () => {
    const enc = new PutEncoder(Buffer.from(PREFIX));
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const msg = enc.next();
      // PutRequest: field 1 (key, length-delimited), field 2 (value, 1024 bytes).
      assert.equal(msg[0], 0x0a);
      const key = enc.keyOf(msg);
      assert.equal(key.length, PREFIX.length + 256);
      assert.equal(key.subarray(0, PREFIX.length).toString(), PREFIX);
      const rest = msg.subarray(enc.keyAt + enc.keyLength);
      assert.deepEqual([...rest.subarray(0, 3)], [0x12, 0x80, 0x08]);
      assert.equal(rest.length, 3 + 1024);
      assert.ok(rest.subarray(3).every((b) => b === 0));
      // Decode Go's binary.PutVarint: zig-zag varint.
      let u = 0n;
      let shift = 0n;
      let j = PREFIX.length;
      for (;;) {
        const b = key[j++] ?? 0;
        u |= BigInt(b & 0x7f) << shift;
        shift += 7n;
        if (b < 0x80) break;
      }
      const v = u & 1n ? -(u >> 1n) - 1n : u >> 1n;
      assert.ok(v >= 0n && v < 2n ** 63n, `${v}`);
      assert.ok(key.subarray(j).every((b) => b === 0));
      seen.add(key.toString('hex'));
    }
    assert.equal(seen.size, 2000, 'keys collide');
  });
});
