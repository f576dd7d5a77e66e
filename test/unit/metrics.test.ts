/**
 * Metrics maths without a server: the parser on a whole page etcd 3.4.23 served here (every
 * sample line, HELP/TYPE) and on the lines etcd 3.5 adds and odd label escapes; quantiles of a
 * recorded pair of WAL fsync scrapes against values worked out by hand; counter resets; the
 * rolling window's bound; and the judgement's words.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  counterDelta,
  histogramDelta,
  quantile,
  readHistogram,
  type Histogram,
} from '../../src/core/metrics/histogram';
import { judgeMember, judgeWindow, type BreachRuns } from '../../src/core/metrics/judge';
import { clusterMetrics } from '../../src/core/metrics/scrape';
import { metricsText } from '../../src/cli/metrics';
import { parsePrometheus, scalar } from '../../src/core/etcd/prometheus';
import type { MemberSummary } from '../../src/shared/metricsTypes';
import {
  MetricsWindow,
  pointFrom,
  summarize,
  type MemberPoint,
} from '../../src/core/metrics/window';
import { JUDGED_SUMMARY } from '../fixtures/memberSummary';

const FIXTURE = join(__dirname, '..', 'fixtures', 'etcd-3.4.23-metrics.txt');

/** Two scrapes of one etcd 3.4.23 member, 50 puts apart then 200 concurrent puts apart. */
const LE = [
  0.001,
  0.002,
  0.004,
  0.008,
  0.016,
  0.032,
  0.064,
  0.128,
  0.256,
  0.512,
  1.024,
  2.048,
  4.096,
  8.192,
  Infinity,
];
const hist = (counts: number[], sum: number): Histogram => ({
  buckets: LE.map((le, i) => ({ le, count: counts[i]! })),
  count: counts[counts.length - 1]!,
  sum,
});
const BEFORE = hist([54, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55], 0.019001832);
const AFTER = hist(
  [79, 97, 117, 143, 155, 162, 163, 163, 163, 163, 163, 163, 163, 163, 163],
  0.586422508,
);

const close = (a: number | undefined, b: number, what: string) =>
  assert.ok(a !== undefined && Math.abs(a - b) < 1e-9, `${what}: ${a} != ${b}`);

describe('Prometheus text format', () => {
  it('parses every sample line of a real etcd 3.4.23 page', () => {
    const text = readFileSync(FIXTURE, 'utf8');
    const page = parsePrometheus(text);
    const sampleLines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
    assert.deepEqual(page.errors, []);
    assert.equal(page.samples, sampleLines);
    assert.equal(page.types.get('etcd_disk_wal_fsync_duration_seconds'), 'histogram');
    assert.equal(page.types.get('grpc_server_handled_total'), 'counter');
    assert.equal(scalar(page, 'etcd_server_quota_backend_bytes'), 2147483648);
    assert.equal(scalar(page, 'etcd_mvcc_db_total_size_in_bytes'), 24576);
    const p = pointFrom(page, 0);
    assert.equal(p.version, '3.4.23');
    assert.equal(p.hasLeader, 1);
    assert.equal(p.walFsync?.count, 5);
    assert.equal(p.walFsync?.buckets.at(-1)?.le, Infinity);
  });

  it("reads etcd 3.5's lines, escapes, special values and timestamps, and reports bad lines", () => {
    const page = parsePrometheus(
      [
        '# HELP etcd_server_feature_enabled Whether or not a feature is enabled. 1 is enabled, 0 is not.',
        '# TYPE etcd_server_feature_enabled gauge',
        'etcd_server_feature_enabled{name="InitialCorruptCheck",stage="alpha"} 0',
        'etcd_server_client_requests_total{client_api_version="3.5",type="grpc"} 12',
        'etcd_network_peer_round_trip_time_seconds_bucket{To="8e9e05c52164694d",le="0.0002"} 1',
        String.raw`odd{path="C:\\etcd",msg="say \"hi\"\nbye", empty=""} 1.5e-3`,
        'go_gc_duration_seconds{quantile="1"} NaN',
        'x_bucket{le="+Inf"} +Inf 1700000000000',
        'y -Inf',
        '# a plain comment',
        'bad{le=0.1} 1',
        'no_value',
        '',
      ].join('\r\n'),
    );
    assert.equal(page.samples, 7);
    assert.equal(page.help.get('etcd_server_feature_enabled')?.startsWith('Whether'), true);
    const odd = page.byName.get('odd')![0]!;
    assert.deepEqual(odd.labels, { path: 'C:\\etcd', msg: 'say "hi"\nbye', empty: '' });
    assert.equal(odd.value, 0.0015);
    assert.ok(Number.isNaN(page.byName.get('go_gc_duration_seconds')![0]!.value));
    assert.equal(page.byName.get('x_bucket')![0]!.value, Infinity);
    assert.equal(page.byName.get('y')![0]!.value, -Infinity);
    assert.deepEqual(
      page.errors.map((e) => e.line),
      [11, 12],
    );
    assert.match(page.errors[0]!.reason, /quoted value expected for label le/);
  });

  it('sums a histogram over its label sets (peer round trips per peer)', () => {
    const page = parsePrometheus(
      [
        'rtt_bucket{To="a",le="0.1"} 1',
        'rtt_bucket{To="a",le="+Inf"} 2',
        'rtt_bucket{To="b",le="0.1"} 3',
        'rtt_bucket{To="b",le="+Inf"} 3',
        'rtt_sum{To="a"} 1',
        'rtt_sum{To="b"} 0.1',
        'rtt_count{To="a"} 2',
        'rtt_count{To="b"} 3',
      ].join('\n'),
    );
    const h = readHistogram(page, 'rtt')!;
    assert.deepEqual(h.buckets, [
      { le: 0.1, count: 4 },
      { le: Infinity, count: 5 },
    ]);
    assert.equal(h.count, 5);
    close(h.sum, 1.1, 'sum');
    assert.equal(readHistogram(page, 'rtt', { To: 'b' })?.count, 3);
  });
});

describe('histogram quantiles over a window', () => {
  it('matches hand-computed p50 and p99 of a recorded pair of scrapes', () => {
    const w = histogramDelta(BEFORE, AFTER);
    // Window: 108 fsyncs; cumulative 25, 42, 62, 88, 100, 107, 108.
    assert.deepEqual(
      w.buckets.slice(0, 7).map((b) => b.count),
      [25, 42, 62, 88, 100, 107, 108],
    );
    assert.equal(w.count, 108);
    // p50: rank 54 lies in (0.002, 0.004] with 42 below and 20 inside: 0.002 + 0.002 * 12/20.
    close(quantile(0.5, w), 0.0032, 'window p50');
    // p99: rank 106.92 lies in (0.016, 0.032] with 100 below and 7 inside.
    close(quantile(0.99, w), 0.016 + 0.016 * (6.92 / 7), 'window p99');
    // Totals since start tell another story: p50 in (0.001, 0.002] with 79 below, 18 inside.
    close(quantile(0.5, AFTER), 0.001 + 0.001 * (2.5 / 18), 'since-start p50');
    close(quantile(0.99, AFTER), 0.016 + 0.016 * (6.37 / 7), 'since-start p99');
  });

  it('gives the first bucket from 0, the +Inf bucket its highest finite bound, nothing for no data', () => {
    const h = hist([10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 12], 1);
    close(quantile(0.5, h), 0.001 * (6 / 10), 'p50 in the first bucket');
    assert.equal(quantile(0.99, h), 8.192);
    assert.equal(quantile(0.99, histogramDelta(AFTER, AFTER)), undefined);
  });

  it('treats a lower count as a restart (counter reset), not a negative window', () => {
    assert.equal(counterDelta(100, 130), 30);
    assert.equal(counterDelta(100, 7), 7);
    assert.deepEqual(histogramDelta(AFTER, BEFORE), BEFORE);
    // A reset between scrapes in the middle of a window loses neither side's observations.
    const p = (at: number, h: Histogram, leaderChanges: number): MemberPoint => ({
      at,
      walFsync: h,
      leaderChanges,
    });
    const s = summarize([p(0, BEFORE, 3), p(10_000, AFTER, 3), p(20_000, BEFORE, 1)])!;
    assert.equal(s.walFsyncs, 108 + 55);
    assert.equal(s.latencyBasis, 'window');
    assert.equal(s.leaderChanges, 1, 'the restarted member counted its first leader');
  });

  it('falls back to since-start latencies, and says so, when the window saw no fsync', () => {
    const s = summarize([
      { at: 0, walFsync: AFTER },
      { at: 5000, walFsync: AFTER },
    ])!;
    assert.equal(s.latencyBasis, 'since-start');
    close(s.walFsyncP99Ms, (0.016 + 0.016 * (6.37 / 7)) * 1000, 'p99 ms');
    // etcd's whole life is no breach happening now: shown, never judged.
    const f = judgeMember(s).find((x) => x.rule === 'wal-fsync')!;
    assert.equal(f.level, 'unjudged');
    assert.equal(
      f.message,
      'WAL fsync p99 31 ms > 10 ms since etcd started, none in the last 5 s: not judged',
    );
  });
});

describe('judgement and the rolling window', () => {
  const base: MemberSummary = JUDGED_SUMMARY;

  /** Every rule over time in breach for the whole window. */
  const SUSTAINED: BreachRuns = Object.fromEntries(
    ['wal-fsync', 'backend-commit', 'peer-rtt', 'grpc-errors', 'has-leader'].map((r) => [
      r,
      { ms: 15 * 60_000, evaluations: 90 },
    ]),
  );

  it('words each broken rule with the figure and the limit', () => {
    const f = judgeMember(
      {
        ...base,
        walFsyncP99Ms: 38,
        backendCommitP99Ms: 30.4,
        hasLeader: false,
        leaderChanges: 4,
        dbTotalBytes: 1_800_000,
        quotaBytes: 2_000_000,
        dbGrowthBytesPerHour: 600_000,
        peerRttP99Ms: 120,
        grpcErrors: 60,
      },
      SUSTAINED,
    );
    const msg = Object.fromEntries(f.map((x) => [x.rule, `${x.level}: ${x.message}`]));
    assert.equal(msg['wal-fsync'], 'bad: disk too slow for etcd: WAL fsync p99 38 ms > 10 ms');
    assert.equal(
      msg['backend-commit'],
      'bad: disk too slow for etcd: backend commit p99 30 ms > 25 ms',
    );
    assert.match(msg['has-leader']!, /^bad: no leader: /);
    assert.match(
      msg['leader-changes']!,
      /^bad: leader changed 4 times in the last 15 min: unstable/,
    );
    assert.equal(
      msg['db-quota'],
      'bad: database near its quota: 1.8 MB of 2.0 MB (90%), growing 600 kB/h: compact and defragment, or raise etcd.quotaBackendBytes in k3s-etcd.yaml and apply it with provision',
    );
    assert.match(
      msg['peer-rtt']!,
      /^bad: network between members slow: peer round trip p99 120 ms > 100 ms/,
    );
    assert.equal(
      msg['grpc-errors'],
      'bad: 6% of gRPC requests failed (60 of 1000) in the last 15 min',
    );
  });

  it('keeps healthy figures ok, and warns short of breaking', () => {
    const ok = judgeMember({
      ...base,
      walFsyncP99Ms: 3.2,
      backendCommitP99Ms: 8,
      hasLeader: true,
      isLeader: true,
      dbTotalBytes: 1_000_000,
      quotaBytes: 2_000_000_000,
    });
    assert.deepEqual(
      ok.filter((x) => x.level !== 'ok'),
      [],
    );
    assert.equal(
      ok.find((x) => x.rule === 'wal-fsync')?.message,
      'WAL fsync p99 3.2 ms (under 10 ms)',
    );
    const warn = judgeMember({ ...base, leaderChanges: 1, dbTotalBytes: 65, quotaBytes: 100 });
    assert.equal(warn.find((x) => x.rule === 'leader-changes')?.level, 'warn');
    assert.equal(warn.find((x) => x.rule === 'db-quota')?.level, 'warn');
  });

  it('keeps only the window, and at most maxPoints, whatever the scrape interval', () => {
    const w = new MetricsWindow({ windowMs: 60_000, maxPoints: 50 });
    for (let i = 0; i <= 600; i++) w.add('m', { at: i * 1000, proposalsCommitted: i * 10 });
    assert.equal(w.pointsOf('m').length, 50);
    const s = w.summary('m')!;
    assert.equal(s.to - s.from, 49_000);
    close(s.proposalsCommittedPerSec, 10, 'rate');
    const w2 = new MetricsWindow({ windowMs: 10_000 });
    for (let i = 0; i <= 100; i++) w2.add('m', { at: i * 1000 });
    assert.equal(w2.pointsOf('m').length, 11);
    w2.retain([]);
    assert.equal(w2.size(), 0);
  });
});

describe('judgement needs enough samples and a sustained breach', () => {
  const FAST = 0.0005; // in the first bucket (≤ 1 ms)
  const SLOW = 0.02; // in (16 ms, 32 ms]
  /** Cumulative WAL fsync histograms: each interval adds `fast` and `slow` observations. */
  function fsyncPoints(
    intervals: ReadonlyArray<{ fast: number; slow: number }>,
    stepMs = 10_000,
  ): MemberPoint[] {
    const counts = new Array<number>(LE.length).fill(0);
    let sum = 0;
    const point = (at: number): MemberPoint => ({
      at,
      hasLeader: 1,
      walFsync: hist([...counts], sum),
    });
    const out = [point(0)];
    intervals.forEach((iv, i) => {
      LE.forEach((le, b) => {
        counts[b]! += (FAST <= le ? iv.fast : 0) + (SLOW <= le ? iv.slow : 0);
      });
      sum += iv.fast * FAST + iv.slow * SLOW;
      out.push(point((i + 1) * stepMs));
    });
    return out;
  }
  const wal = (points: MemberPoint[]) =>
    judgeWindow(points).findings.find((f) => f.rule === 'wal-fsync')!;
  const times = <T>(n: number, x: T): T[] => Array.from({ length: n }, () => x);

  it('a few slow samples are not judged: "too few samples", in the neutral level', () => {
    // A fresh, idle member: 12 fsyncs in 15 minutes, every one slow.
    const idle = fsyncPoints([{ fast: 0, slow: 12 }, ...times(89, { fast: 0, slow: 0 })]);
    const f = wal(idle);
    assert.equal(f.level, 'unjudged');
    assert.equal(f.note, 'too few samples');
    assert.equal(
      f.message,
      'too few samples: WAL fsync p99 32 ms from 12 fsyncs (judged from 100)',
    );
    // The same handful seen only since etcd started.
    const sinceStart = fsyncPoints([{ fast: 0, slow: 12 }]).slice(1);
    sinceStart.push({ ...sinceStart[0]!, at: 10_000 });
    assert.equal(wal(sinceStart).note, 'too few samples');
    assert.match(wal(sinceStart).message, /from 12 fsyncs since etcd started/);
    // Nothing marks the member, and the panel's and CLI's lists leave it out.
    const m = clusterMetrics(
      'c',
      [{ member: 'm', endpoint: 'https://m:2379', url: 'https://m:2379/metrics' }],
      (() => {
        const w = new MetricsWindow();
        for (const p of idle) w.add('m', p);
        return w;
      })(),
      { at: 0, errors: new Map() },
    );
    assert.equal(m.members[0]!.level, 'ok');
    const text = metricsText(m);
    assert.match(text, /Every member is within etcd's guidance\./);
    assert.match(text, /Not judged:\n {2}m {2}too few samples: WAL fsync p99 32 ms/);
  });

  it('a sustained breach with enough samples is judged, and not before it has lasted', () => {
    const slow = { fast: 0, slow: 50 };
    // 30 s of slow fsyncs (150 of them): enough samples, not yet sustained.
    const early = wal(fsyncPoints(times(3, slow)));
    assert.equal(early.level, 'unjudged');
    assert.equal(early.note, 'not sustained');
    assert.equal(
      early.message,
      'WAL fsync p99 32 ms > 10 ms for 30 s so far: marked once it lasts 1 min',
    );
    // A minute and more of them: marked.
    const late = wal(fsyncPoints(times(7, slow)));
    assert.equal(late.level, 'bad');
    assert.equal(late.message, 'disk too slow for etcd: WAL fsync p99 32 ms > 10 ms');
    // An idle interval inside the breach neither ends it nor counts as a breach.
    const gap = wal(fsyncPoints([...times(3, slow), { fast: 0, slow: 0 }, ...times(3, slow)]));
    assert.equal(gap.level, 'bad');
  });

  it('a single spike between good windows is not judged, wherever it falls', () => {
    const good = { fast: 50, slow: 0 };
    const spike = { fast: 0, slow: 50 };
    // Over the window the p99 is above 10 ms (50 slow of 1050: rank 1039.5 lies in (16, 32] ms
    // with 1000 below, 16 + 16 * 39.5 / 50 = 29 ms), so the old judgement marked it.
    const between = wal(fsyncPoints([...times(10, good), spike, ...times(10, good)]));
    assert.equal(between.level, 'unjudged');
    assert.equal(
      between.message,
      'WAL fsync p99 29 ms > 10 ms over the last 4 min, within the limit at the latest scrapes: a brief breach is not judged',
    );
    const last = wal(fsyncPoints([...times(20, good), spike]));
    assert.equal(last.level, 'unjudged');
    assert.match(last.message, /for 10 s so far: marked once it lasts 1 min$/);
    // The CLI judges its one measured interval: a breach over all of it counts.
    const cli = judgeWindow(fsyncPoints([{ fast: 100, slow: 50 }]), {
      minObservations: 100,
      sustainMs: 10_000,
      minEvaluations: 1,
    }).findings.find((f) => f.rule === 'wal-fsync')!;
    assert.equal(cli.level, 'bad');
  });

  it('a member without a leader is marked only when it lasts', () => {
    const leaderless = (n: number): MemberPoint[] =>
      Array.from({ length: n }, (_, i) => ({ at: i * 10_000, hasLeader: 0 }));
    const brief = judgeWindow(leaderless(2)).findings.find((f) => f.rule === 'has-leader')!;
    assert.equal(brief.level, 'unjudged');
    assert.match(brief.message, /^no leader at the latest scrape for 10 s so far/);
    const lasting = judgeWindow(leaderless(8)).findings.find((f) => f.rule === 'has-leader')!;
    assert.equal(lasting.level, 'bad');
    assert.match(lasting.message, /^no leader: /);
  });
});
