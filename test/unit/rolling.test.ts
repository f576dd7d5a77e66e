/**
 * The rolling engine's rules, pure: the member table read from health, status and the member
 * list; the order (members already down first, followers, the leader last); the refusal when
 * another voter is not healthy (naming it); "caught up"; the follower that takes over the
 * leadership; which hosts restart and why from their dry runs; and the preview's words. The
 * engine itself runs on real hosts in test/system/rolling.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterSnapshot, HealthRow, StatusRow } from '../../src/shared/etcdTypes';
import type { StepOutcome } from '../../src/core/plan/runner';
import { fileStep, type HostPlan } from '../../src/core/plan/steps';
import { planRollout, type RollingJob } from '../../src/core/rolling/engine';
import {
  caughtUp,
  leaderTarget,
  mayRestart,
  memberTable,
  nextMember,
  rollingOrder,
  type MemberRow,
} from '../../src/core/rolling/order';
import {
  restartFiles,
  restartReason,
  rollingPlanLines,
  type RestartReason,
} from '../../src/core/rolling/restarts';
import { backupScript, keepPreviousScript, restoreScript } from '../../src/core/rolling/backup';
import type { CheckedPlan } from '../../src/core/plan/runner';

const row = (name: string, over: Partial<MemberRow> = {}): MemberRow => ({
  name,
  id: `${name}-id`,
  voter: true,
  endpoint: `https://${name}:2379`,
  healthy: true,
  isLeader: false,
  raftIndex: 100,
  ...over,
});

/** a, b, c healthy; b leads. */
const three = (): MemberRow[] => [row('a'), row('b', { isLeader: true }), row('c')];

describe('rolling order', () => {
  it('followers first in the given order, the leader last', () => {
    assert.deepEqual(rollingOrder(three(), ['a', 'b', 'c']), ['a', 'c', 'b']);
    assert.deepEqual(rollingOrder(three(), ['b', 'c', 'a']), ['c', 'a', 'b']);
    assert.deepEqual(rollingOrder(three(), ['b']), ['b']);
  });

  it('a member already down goes first (restarting it costs nothing)', () => {
    const t = three();
    t[2] = row('c', { healthy: false, problem: 'connection refused' });
    assert.deepEqual(rollingOrder(t, ['a', 'b', 'c']), ['c', 'a', 'b']);
    assert.equal(nextMember(t, ['b', 'c']), 'c');
  });

  it('a member the table does not know (not started yet) counts as down', () => {
    assert.equal(nextMember(three(), ['a', 'new']), 'new');
  });

  it('picks the next member from the table as it is now: a new leader goes last', () => {
    const t = three();
    t[1] = row('b');
    t[0] = row('a', { isLeader: true });
    assert.equal(nextMember(t, ['a', 'b']), 'b');
  });
});

describe('refusal: every other voter healthy', () => {
  it('allows a member when the others are healthy, whatever its own state', () => {
    assert.equal(mayRestart(three(), 'a').ok, true);
    const t = three();
    t[0] = row('a', { healthy: false, problem: 'timeout' });
    assert.equal(mayRestart(t, 'a').ok, true);
  });

  it('refuses naming every voter that is not healthy, and why', () => {
    const t = [
      ...three(),
      row('d', { healthy: false, problem: 'connection refused' }),
      row('e', { healthy: false, problem: 'deadline exceeded' }),
    ];
    const v = mayRestart(t, 'a');
    assert.equal(v.ok, false);
    assert.match(
      v.why,
      /restarting a is refused: voters d \(connection refused\), e \(deadline exceeded\) are not healthy/,
    );
    const one = mayRestart([...three(), row('d', { healthy: false, problem: 'x' })], 'a');
    assert.match(one.why, /voter d \(x\) is not healthy\. Bring it back first/);
  });

  it('a learner that is down does not block (it does not vote)', () => {
    const t = [...three(), row('l', { voter: false, healthy: false })];
    assert.equal(mayRestart(t, 'a').ok, true);
  });

  it('refuses when the cluster has no leader', () => {
    const t = three().map((r) => ({ ...r, isLeader: false }));
    assert.match(mayRestart(t, 'a').why, /no leader/);
  });

  it('a single member restarts alone', () => {
    const v = mayRestart([row('a', { isLeader: true })], 'a');
    assert.deepEqual(v, { ok: true, why: 'a is the only voter: it restarts alone' });
  });
});

describe('caught up and the next leader', () => {
  it('caught up within the gap of the leader', () => {
    const t = three();
    t[1] = row('b', { isLeader: true, raftIndex: 1000 });
    t[0] = row('a', { raftIndex: 960 });
    t[2] = row('c', { raftIndex: 900 });
    assert.equal(caughtUp(t, 'a', 50).ok, true);
    const c = caughtUp(t, 'c', 50);
    assert.equal(c.ok, false);
    assert.match(c.why, /c is 100 raft entries behind the leader b \(900 < 1000\)/);
  });

  it('not caught up while unhealthy, without a leader or without a raft index', () => {
    const t = three();
    t[0] = row('a', { healthy: false, problem: 'connection refused' });
    assert.match(caughtUp(t, 'a').why, /not healthy \(connection refused\)/);
    assert.match(
      caughtUp(
        three().map((r) => ({ ...r, isLeader: false })),
        'a',
      ).why,
      /no leader/,
    );
    const u = three();
    delete u[0]!.raftIndex;
    assert.equal(caughtUp(u, 'a').ok, false);
    assert.match(caughtUp(three(), 'zz').why, /not in the member list/);
  });

  it('hands the leadership to a caught-up follower, one already restarted first', () => {
    const t = [
      row('a', { raftIndex: 990 }),
      row('b', { isLeader: true, raftIndex: 1000 }),
      row('c', { raftIndex: 995 }),
      row('d', { raftIndex: 500 }),
    ];
    assert.equal(leaderTarget(t)?.name, 'c', 'the furthest ahead');
    assert.equal(leaderTarget(t, ['a'])?.name, 'a', 'already on the new files');
    assert.equal(leaderTarget(t, ['d'])?.name, 'c', 'never one that lags');
    assert.equal(leaderTarget([row('b', { isLeader: true })]), undefined);
  });
});

const health = (endpoint: string, ok: boolean): HealthRow => ({
  endpoint,
  health: ok,
  tookMs: 1,
  alarms: [],
  ...(ok ? {} : { problem: { code: 'refused', summary: 'connection refused', hint: '' } }),
});
const status = (endpoint: string, id: string, leader: string, index: string): StatusRow => ({
  endpoint,
  id,
  version: '3.4.23',
  dbSize: 1,
  dbSizeInUse: 1,
  leader,
  isLeader: id === leader,
  isLearner: false,
  raftTerm: '2',
  raftIndex: index,
  raftAppliedIndex: index,
  errors: [],
});

describe('member table', () => {
  it('reads health, status and the member list; matches status by the id that answers', () => {
    const snap: ClusterSnapshot = {
      at: '',
      endpoints: ['https://1:2379', 'https://2:2379', 'https://3:2379'],
      health: [
        health('https://1:2379', true),
        health('https://2:2379', true),
        health('https://3:2379', false),
      ],
      status: [
        // Endpoint 2 answers as member "a1": a URL naming another member is not trusted.
        status('https://2:2379', 'b2', 'b2', '42'),
        status('https://1:2379', 'a1', 'b2', '40'),
        {
          ...status('https://3:2379', '', '', ''),
          problem: { code: 'refused', summary: 'connection refused', hint: '' },
        },
      ],
      members: [
        { id: 'a1', name: 'a', peerUrls: [], clientUrls: ['https://1:2379'], isLearner: false },
        { id: 'b2', name: 'b', peerUrls: [], clientUrls: ['https://2:2379'], isLearner: false },
        { id: 'c3', name: 'c', peerUrls: [], clientUrls: ['https://3:2379'], isLearner: false },
        { id: 'd4', name: '', peerUrls: [], clientUrls: [], isLearner: true },
      ],
      summary: '',
      healthy: false,
    };
    assert.deepEqual(memberTable(snap), [
      {
        name: 'a',
        id: 'a1',
        voter: true,
        endpoint: 'https://1:2379',
        healthy: true,
        isLeader: false,
        raftIndex: 40,
      },
      {
        name: 'b',
        id: 'b2',
        voter: true,
        endpoint: 'https://2:2379',
        healthy: true,
        isLeader: true,
        raftIndex: 42,
      },
      {
        name: 'c',
        id: 'c3',
        voter: true,
        endpoint: 'https://3:2379',
        healthy: false,
        problem: 'connection refused',
        isLeader: false,
      },
      {
        name: 'd4',
        id: 'd4',
        voter: false,
        healthy: false,
        problem: 'not started',
        isLeader: false,
      },
    ]);
  });
});

/** A member plan shaped like provisioning's: files, a binary install, the service. */
function memberPlan(host: string): HostPlan {
  return {
    host,
    title: host,
    payloads: [],
    steps: [
      { kind: 'guard', id: 'systemd', title: 'systemd', check: 'true', message: 'x' },
      {
        kind: 'command',
        id: 'binaries',
        title: 'install etcd 3.4.23',
        check: 'true',
        run: 'true',
        writes: ['/usr/local/bin/etcd', '/usr/local/bin/etcdctl'],
      },
      fileStep({
        id: 'server',
        title: 'server certificate /etc/etcd/pki/server.pem',
        path: '/etc/etcd/pki/server.pem',
        mode: 0o644,
        content: 'c\n',
      }),
      fileStep({
        id: 'marker',
        title: 'cluster marker',
        path: '/var/lib/etcd/.m',
        mode: 0o600,
        content: 'm\n',
      }),
      fileStep({
        id: 'env',
        title: 'environment /etc/etcd/etcd.env (0600)',
        path: '/etc/etcd/etcd.env',
        mode: 0o600,
        content: 'e\n',
      }),
      {
        kind: 'service',
        id: 'service',
        title: 'start etcd',
        unit: 'etcd',
        restartOn: ['binaries', 'server', 'env'],
      },
    ],
  };
}

const outcomes = (plan: HostPlan, changed: string[]): StepOutcome[] =>
  plan.steps.map((s, i) => ({
    n: i + 1,
    total: plan.steps.length,
    title: s.title,
    status: changed.includes(s.id) ? 'would-change' : 'unchanged',
  }));

describe('which hosts restart, and why', () => {
  it('the files the service runs on: its file steps and what its commands write', () => {
    assert.deepEqual(restartFiles(memberPlan('a')), [
      '/usr/local/bin/etcd',
      '/usr/local/bin/etcdctl',
      '/etc/etcd/pki/server.pem',
      '/etc/etcd/etcd.env',
    ]);
  });

  it('a restart names the changed files it restarts on; a file it does not use restarts nothing', () => {
    const p = memberPlan('a');
    assert.deepEqual(restartReason(p, outcomes(p, ['env', 'server', 'service'])), {
      host: 'a',
      unit: 'etcd',
      kind: 'restart',
      why: ['server certificate /etc/etcd/pki/server.pem', 'environment /etc/etcd/etcd.env (0600)'],
    });
    assert.equal(restartReason(p, outcomes(p, ['marker'])), undefined);
    assert.equal(restartReason(p, outcomes(p, [])), undefined);
    assert.equal(restartReason(p, outcomes(p, ['service']))?.kind, 'start');
  });

  it('the preview: members in order with role and reason; hosts with only file changes; a refusal', () => {
    const checked = (host: string, changed: string[]) => {
      const plan = memberPlan(host);
      const steps = outcomes(plan, changed);
      const run = {
        host,
        status: changed.length ? 'would-change' : 'unchanged',
        steps,
        timings: {},
      } as const;
      return {
        job: { host, member: host } as RollingJob,
        checked: { plan, script: '', run, pending: new Set(changed) } as CheckedPlan,
        ...(restartReason(plan, steps)
          ? { restart: restartReason(plan, steps) as RestartReason }
          : {}),
      };
    };
    const prepared = [
      checked('a', ['env', 'service']),
      checked('b', ['env', 'service']),
      checked('c', ['marker']),
      checked('d', []),
    ];
    const table = [row('a'), row('b', { isLeader: true }), row('c'), row('d')];
    const plan = planRollout(prepared, table);
    assert.deepEqual(
      plan.order.map((o) => `${o.member}:${o.role}`),
      ['a:follower', 'b:leader'],
    );
    assert.deepEqual(plan.filesOnly, ['c']);
    assert.deepEqual(rollingPlanLines(plan), [
      'etcd restarts on 2 member(s), one at a time (each healthy and caught up before the next; the leader last, after handing its leadership to a follower):',
      '  1. a (follower): restarts for environment /etc/etcd/etcd.env (0600)',
      '  2. b (leader): restarts for environment /etc/etcd/etcd.env (0600)',
      'no restart on c: only files change there',
    ]);

    table[3] = row('d', { healthy: false, problem: 'connection refused' });
    assert.match(
      rollingPlanLines(planRollout(prepared, table)).at(-1) ?? '',
      /^refused as things stand: restarting a is refused: voter d \(connection refused\) is not healthy/,
    );

    const fresh = planRollout(prepared, undefined);
    assert.equal(fresh.mode, 'together');
    assert.match(rollingPlanLines(fresh)[1] ?? '', /^  1\. a: starts with environment/);
    assert.match(
      rollingPlanLines(fresh)[0] ?? '',
      /starts on 2 member\(s\) together \(no member answers: a new cluster\)/,
    );
    assert.deepEqual(rollingPlanLines(planRollout([checked('d', [])], table)), []);
    assert.ok(!rollingPlanLines(plan).some((l) => l.startsWith('warning:')));

    // Two voters: any restart loses quorum for a moment, and the preview says so.
    const two = planRollout(prepared.slice(0, 2), [row('a'), row('b', { isLeader: true })]);
    assert.match(
      rollingPlanLines(two).at(-1) ?? '',
      /^warning: the cluster has only 2 voters: while one restarts the other alone is no quorum/,
    );
    const learner = [row('a'), row('b', { isLeader: true }), row('c', { voter: false })];
    assert.match(
      rollingPlanLines(planRollout(prepared.slice(0, 2), learner)).join('\n'),
      /only 2 voters/,
    );
  });
});

describe('rollback set scripts', () => {
  it('quote every path, refuse folders root does not own, and only take a rollback folder back', () => {
    const s = backupScript(["/etc/etcd/it's.env"]);
    assert.ok(s.includes(`cp -pP '/etc/etcd/it'\\''s.env' "$B/0"`), s);
    assert.match(s, /root_dir .*\|\| \{ echo .*its folder is not owned by root/);
    assert.throws(() => restoreScript('/tmp/x; rm -rf /', ['/a'], 'etcd'), /not a rollback folder/);
    const r = restoreScript('/var/tmp/.k3s-etcd-rollback-abc123', ['/etc/etcd/etcd.env'], 'etcd');
    assert.match(r, /systemctl daemon-reload/);
    assert.match(r, /systemctl restart etcd/);
  });

  it('keep the previous binaries as <path>.previous, root-owned 0755, and only the paths asked', () => {
    const k = keepPreviousScript(
      '/var/tmp/.k3s-etcd-rollback-abc123',
      ['/usr/local/bin/etcd', '/usr/local/bin/etcdctl', '/etc/etcd/etcd.env'],
      ['/usr/local/bin/etcd', '/usr/local/bin/etcdctl'],
    );
    assert.ok(k.includes('cp "$B/0" /usr/local/bin/etcd.previous.k3s-etcd-new'), k);
    assert.ok(
      k.includes('chown root:root /usr/local/bin/etcdctl.previous.k3s-etcd-new && chmod 0755'),
      k,
    );
    assert.ok(
      k.includes('mv -f /usr/local/bin/etcd.previous.k3s-etcd-new /usr/local/bin/etcd.previous &&'),
      k,
    );
    assert.ok(
      keepPreviousScript('/var/tmp/.k3s-etcd-rollback-abc123', ["/o'k"], ["/o'k"]).includes(
        `'/o'\\''k.previous'`,
      ),
    );
    assert.ok(!k.includes('etcd.env'), k);
    assert.throws(() => keepPreviousScript('/tmp/x', ['/a'], ['/a']), /not a rollback folder/);
  });
});
