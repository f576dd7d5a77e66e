/**
 * What the editor and the CLI show, without a server: the one time format (local with the zone),
 * ISO 8601 in `metrics --json`, whole-number ticks for count charts, each member's role, and
 * the words and commands after a performance check whose writes still take space.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { localClock, localStamp, zoneName } from '../../src/core/format/stamp';
import { integerRange, integerTicks } from '../../src/shared/ticks';
import { memberRole, type ClusterMetrics, type MemberSummary } from '../../src/shared/metricsTypes';
import { metricsJson, metricsText } from '../../src/cli/metrics';
import { reclaimAdvice } from '../../src/cli/perf';
import { keptSpaceText, reclaimedText, spaceReclaimed } from '../../src/core/perf/reclaim';

const AT = Date.UTC(2026, 11, 6, 16, 20, 31, 250); // 2026-12-06T16:20:31.250Z

describe('one time format in the editor', () => {
  it('local time with the zone, from epoch ms, ISO strings and Dates alike', () => {
    assert.equal(localStamp(AT, 60), '2026-12-06 17:20:31 UTC+1');
    assert.equal(localStamp(new Date(AT).toISOString(), 0), '2026-12-06 16:20:31 UTC');
    assert.equal(localStamp(new Date(AT), -210), '2026-12-06 12:50:31 UTC-3:30');
    assert.equal(localStamp(AT, 330), '2026-12-06 21:50:31 UTC+5:30');
    // Across midnight and the year.
    assert.equal(localStamp(Date.UTC(2026, 11, 31, 23, 30, 0), 60), '2027-01-01 00:30:00 UTC+1');
    assert.equal(zoneName(-60), 'UTC-1');
  });

  it("where it runs, the zone is the machine's", () => {
    const offset = -new Date(AT).getTimezoneOffset();
    assert.equal(localStamp(AT), localStamp(AT, offset));
    assert.match(
      localStamp(AT),
      /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC([+-]\d{1,2}(:\d{2})?)?$/,
    );
  });

  it('a chart axis shows the time of day of the same format; what is no time stays as it is', () => {
    assert.equal(localClock(AT, { offsetMinutes: 60 }), '17:20');
    assert.equal(localClock(AT, { offsetMinutes: 60, seconds: true }), '17:20:31');
    assert.equal(localStamp('not yet'), 'not yet');
  });
});

describe('charts of whole things', () => {
  it('ticks are whole numbers, each once: never "1, 1, 0"', () => {
    // uPlot split 0..1.1 into 0, 0.5, 1 and the labels rounded to 0, 1, 1.
    assert.deepEqual(integerTicks(0, 1.1), [0, 1]);
    assert.deepEqual(integerTicks(0, 2), [0, 1, 2]);
    assert.deepEqual(integerTicks(0, 12), [0, 5, 10]);
    assert.deepEqual(integerTicks(0, 137), [0, 50, 100]);
    assert.deepEqual(integerTicks(0.2, 0.8), []);
    for (const max of [1, 3, 7, 19, 250, 4999]) {
      const t = integerTicks(0, max);
      assert.ok(t.length >= 1 && t.length <= 5, `${max}: ${t.join(', ')}`);
      assert.equal(new Set(t).size, t.length);
      assert.ok(t.every(Number.isInteger));
    }
  });

  it('the range of a count chart ends on a whole number above the largest value', () => {
    assert.deepEqual(integerRange([0, 1, 1]), [0, 2]);
    assert.deepEqual(integerRange([0, 0]), [0, 1]);
    assert.deepEqual(integerRange([]), [0, 1]);
  });
});

function summary(over: Partial<MemberSummary>): MemberSummary {
  return {
    from: AT - 10_000,
    to: AT,
    scrapes: 2,
    latencyBasis: 'window',
    walFsyncs: 100,
    backendCommits: 100,
    peerRoundTrips: 0,
    leaderChanges: 0,
    proposalsFailed: 0,
    grpcErrors: 0,
    grpcRequests: 10,
    ...over,
  };
}

function cluster(): ClusterMetrics {
  const member = (name: string, isLeader: boolean) => ({
    member: name,
    endpoint: `https://127.0.0.1:2379`,
    url: `https://127.0.0.1:2379/metrics`,
    summary: summary({ hasLeader: true, isLeader }),
    findings: [],
    level: 'ok' as const,
    series: [{ at: AT, keys: 3 }],
  });
  return {
    cluster: 'edge',
    at: AT,
    windowMs: 70_000,
    members: [member('edge-1', true), member('edge-2', false)],
    level: 'ok',
    summary: 'leader edge-1',
  };
}

describe("each member's role", () => {
  it('leader, follower or no leader, as etcd_server_is_leader and _has_leader say', () => {
    assert.equal(memberRole(summary({ hasLeader: true, isLeader: true })), 'leader');
    assert.equal(memberRole(summary({ hasLeader: true, isLeader: false })), 'follower');
    assert.equal(memberRole(summary({ hasLeader: false, isLeader: false })), 'no leader');
    assert.equal(memberRole(summary({})), undefined);
    assert.equal(memberRole(undefined), undefined);
  });

  it('the CLI table says it in a ROLE column, never "yes" for a follower', () => {
    const text = metricsText(cluster());
    assert.match(text, /\bROLE\b/);
    assert.match(text, /edge-1 .* leader /);
    assert.match(text, /edge-2 .* follower /);
    assert.doesNotMatch(text, / yes /);
  });
});

describe('metrics --json', () => {
  it('every moment is ISO 8601', () => {
    const out = JSON.parse(JSON.stringify(metricsJson(cluster()))) as {
      at: unknown;
      members: Array<{ summary: { from: unknown; to: unknown }; series: Array<{ at: unknown }> }>;
    };
    const iso = new Date(AT).toISOString();
    assert.equal(out.at, iso);
    assert.equal(out.members[0]!.summary.to, iso);
    assert.equal(out.members[0]!.summary.from, new Date(AT - 10_000).toISOString());
    assert.equal(out.members[1]!.series[0]!.at, iso);
  });
});

describe('after a performance check: the space its writes still take', () => {
  const space = { dbBytes: 11_000_000, inUseBytes: 98_304 };

  it('says how large the database is and why, with the commands that give the space back', () => {
    const lines = reclaimAdvice({
      revision: '1234',
      space,
      maintenance: undefined,
      target: { cluster: 'edge t' },
      auto: false,
    });
    assert.deepEqual(lines, [
      "The check's writes still take space: the database file is 11 MB with only 98 kB of it in use, and every snapshot taken now is as large, until the history is compacted at revision 1234 and every member defragmented.",
      'Give it back (defrag blocks each member for a moment):',
      `  eval "$(k3s-etcd etcdctl-env --cluster 'edge t')"`,
      '  etcdctl compact 1234 --physical',
      '  etcdctl defrag',
      'or run the check with --auto-compact --auto-defrag next time.',
    ]);
  });

  it('after --auto-compact only, defragmentation is what is left; endpoints from the flags', () => {
    const lines = reclaimAdvice({
      revision: '77',
      space: undefined,
      maintenance: { revision: '77', compacted: true, defragmented: [] },
      target: {
        endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
        tls: { caFile: '/p/ca.pem', certFile: '/p/a.pem', keyFile: "/p/it's.pem" },
      },
      auto: false,
    });
    assert.match(lines[0]!, /the database file keeps its size/);
    assert.ok(lines.includes("  export ETCDCTL_KEY='/p/it'\\''s.pem'"), lines.join('\n'));
    assert.ok(
      lines.includes('  export ETCDCTL_ENDPOINTS=https://10.0.0.1:2379,https://10.0.0.2:2379'),
    );
    assert.ok(!lines.some((l) => l.includes('etcdctl compact')));
    assert.ok(lines.includes('  etcdctl defrag'));
    // In-memory certificates (K3s's own) cannot be handed to etcdctl as files.
    const pem = reclaimAdvice({
      revision: '77',
      space: undefined,
      maintenance: undefined,
      target: {
        endpoints: ['https://a:2379'],
        tls: { ca: 'x', cert: 'y', key: 'z', source: 'k3s' },
      },
      auto: true,
    });
    assert.equal(
      pem[1],
      'Give it back with etcdctl pointed at the cluster (defrag blocks each member for a moment):',
    );
    assert.ok(!pem.some((l) => l.includes('next time')));
  });

  it('only both steps on every member count as reclaimed; the outcome in words', () => {
    const ok = {
      revision: '9',
      compacted: true,
      defragmented: [
        { endpoint: 'a', ok: true, durationMs: 5 },
        { endpoint: 'b', ok: true, durationMs: 5 },
      ],
    };
    assert.equal(spaceReclaimed(ok), true);
    assert.equal(spaceReclaimed({ ...ok, compacted: false }), false);
    assert.equal(spaceReclaimed(undefined), false);
    assert.equal(
      reclaimedText(ok, { dbBytes: 102_400, inUseBytes: 90_000 }),
      'Compacted at revision 9 and defragmented 2 member(s): the database file is 102 kB now.',
    );
    assert.equal(
      reclaimedText(
        {
          ...ok,
          defragmented: [{ endpoint: 'b', ok: false, error: 'deadline exceeded', durationMs: 1 }],
        },
        undefined,
      ),
      'Compaction and defragmentation did not finish (b: deadline exceeded). Try again once every member answers.',
    );
    assert.match(keptSpaceText('5', undefined), /compacted at revision 5/);
    // Before compaction the history of the deleted keys still counts as in use: not said then.
    assert.match(
      keptSpaceText('5', { dbBytes: 2_300_000, inUseBytes: 2_290_000 }),
      /the database file is 2\.3 MB, and every snapshot/,
    );
  });
});
