/**
 * The rolling engine's control flow (core/rolling/engine.ts runRolling and its rollout), on a
 * fake cluster whose member table the test scripts and fake hosts that record every script they
 * are given: followers first and the leader last after move-leader; a refusal in the middle of a
 * rollout when another voter goes down (named); a move-leader that fails; no follower caught up
 * to take over; a member that does not come back healthy in time (its files put back on exactly
 * that host); a failure on the second member (the first stays changed, the third is not
 * started). The same engine runs on real hosts in test/system/rolling.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { K3sEtcdError } from '../../src/core/errors';
import type { HostTransport } from '../../src/core/plan/runner';
import { fileStep, type HostPlan } from '../../src/core/plan/steps';
import { runRolling, type RollingJob } from '../../src/core/rolling/engine';
import type { LiveCluster } from '../../src/core/rolling/live';
import type { MemberRow } from '../../src/core/rolling/order';
import type { ExecOptions } from '../../src/core/ssh/types';

/** What a fake host was asked to do, in order, across every host. */
type Event = 'check' | 'apply' | 'backup' | 'restore' | 'drop' | 'move-leader';

interface World {
  rows: MemberRow[];
  events: Array<{ host: string; event: Event; detail?: string }>;
  /** Called after a host's event; may change the table (a member going down, coming back). */
  after?: (host: string, event: Event) => void;
  /** Hosts whose apply script fails. */
  failApply?: Set<string>;
  moveLeaderError?: Error;
}

const row = (name: string, over: Partial<MemberRow> = {}): MemberRow => ({
  name,
  id: `${name}-id`,
  voter: true,
  endpoint: `https://${name}:2379`,
  healthy: true,
  isLeader: false,
  raftIndex: 1000,
  ...over,
});

/** The member's plan: its env file and etcd, which restarts on it. */
function plan(host: string): HostPlan {
  return {
    host,
    title: `etcd member ${host}`,
    payloads: [],
    steps: [
      fileStep({
        id: 'env',
        title: 'environment /etc/etcd/etcd.env (0600)',
        path: '/etc/etcd/etcd.env',
        mode: 0o600,
        content: `ETCD_NAME=${host}\n`,
      }),
      {
        kind: 'service',
        id: 'service',
        title: 'start etcd',
        unit: 'etcd',
        restartOn: ['env'],
      },
    ],
  };
}

/** A host that answers the runner's and the rollback set's scripts, recording each. */
function fakeHost(world: World, host: string): HostTransport {
  const record = (event: Event, detail?: string) => {
    world.events.push({ host, event, ...(detail ? { detail } : {}) });
    world.after?.(host, event);
  };
  return {
    label: host,
    async exec(command: string, opts: ExecOptions = {}) {
      const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
      const stdin = typeof opts.stdin === 'string' ? opts.stdin : '';
      if (command.startsWith('DRY_RUN=')) {
        const dry = command.startsWith('DRY_RUN=1');
        const fails = !dry && world.failApply?.has(host);
        const lines = dry
          ? ['<== 1/2 would-change', '<== 2/2 would-change']
          : fails
            ? [
                '<== 1/2 changed',
                '<== 2/2 failed: etcd did not start: flag provided but not defined',
              ]
            : ['<== 1/2 changed', '<== 2/2 changed'];
        record(dry ? 'check' : 'apply');
        opts.onStdout?.(`${lines.join('\n')}\n`);
        return { code: fails ? 1 : 0, stdout: '', stderr: '' };
      }
      if (command.startsWith('mktemp -d /tmp/.k3s-etcd-stage-'))
        return ok(`/tmp/.k3s-etcd-stage-${host}00000\n`);
      if (command.startsWith('rm -rf /var/tmp/.k3s-etcd-rollback-')) {
        record('drop');
        return ok();
      }
      if (command.startsWith('rm -rf')) return ok();
      if (command === 'sh -s' && stdin.includes('mktemp -d /var/tmp/.k3s-etcd-rollback-')) {
        record('backup', stdin);
        return ok(`/var/tmp/.k3s-etcd-rollback-${host}00001\n`);
      }
      if (command === 'sh -s' && stdin.includes('restarted on the previous files')) {
        record('restore', stdin);
        return ok('    put back /etc/etcd/etcd.env\n    etcd restarted on the previous files\n');
      }
      throw new Error(`${host}: unexpected command ${command}`);
    },
    async put() {},
    close() {},
  };
}

function fakeLive(world: World): LiveCluster {
  return {
    async probe() {
      return world.rows.map((r) => ({ ...r }));
    },
    async moveLeader(leader, target) {
      world.events.push({ host: leader.name, event: 'move-leader', detail: target.name });
      if (world.moveLeaderError) throw world.moveLeaderError;
      world.rows = world.rows.map((r) => ({ ...r, isLeader: r.name === target.name }));
    },
  };
}

/** Runs the rollout of `members` (each on the host of its name) over the world's cluster. */
async function roll(world: World, members: string[], settleMs = 2000) {
  const jobs: RollingJob[] = members.map((m) => ({
    host: m,
    member: m,
    open: async () => fakeHost(world, m),
    plan: async () => plan(m),
  }));
  const lines: string[] = [];
  const r = await runRolling(jobs, {
    dryRun: false,
    live: { cluster: fakeLive(world), table: world.rows.map((x) => ({ ...x })) },
    settleMs,
    onLine: (h, l) => lines.push(`[${h}] ${l}`),
  });
  const run = (host: string) => r.runs.find((x) => x.host === host)!;
  /** The events after the dry runs, as `host event`. */
  const acts = world.events
    .filter((e) => e.event !== 'check')
    .map((e) => `${e.host} ${e.event}${e.event === 'move-leader' ? ` ${e.detail}` : ''}`);
  return { r, run, lines, acts };
}

/** a, b, c healthy; b leads. */
const three = (): MemberRow[] => [row('a'), row('b', { isLeader: true }), row('c')];

describe('the rolling engine', () => {
  it('followers first, one at a time with a rollback set each, the leader last after move-leader', async () => {
    const world: World = { rows: three(), events: [] };
    const { r, run, acts } = await roll(world, ['a', 'b', 'c']);
    assert.deepEqual(
      r.plan.order.map((o) => `${o.member} ${o.role}`),
      ['a follower', 'c follower', 'b leader'],
    );
    assert.deepEqual(acts, [
      'a backup',
      'a apply',
      'a drop',
      'c backup',
      'c apply',
      'c drop',
      'b move-leader a',
      'b backup',
      'b apply',
      'b drop',
    ]);
    for (const h of ['a', 'b', 'c']) assert.equal(run(h).status, 'changed', h);
    // Every host was dry-run first, before anything was applied anywhere.
    assert.deepEqual(
      world.events.slice(0, 3).map((e) => e.event),
      ['check', 'check', 'check'],
    );
    assert.match(
      world.events.find((e) => e.event === 'backup')?.detail ?? '',
      /cp -pP \/etc\/etcd\/etcd\.env "\$B\/0"/,
      'the rollback set copies the files etcd restarts on',
    );
  });

  it('refuses mid-rollout when another voter goes down, naming it; nothing changes on the member refused', async () => {
    // d is a voter the change does not touch; it goes down once a has restarted.
    const world: World = { rows: [...three(), row('d')], events: [] };
    world.after = (host, event) => {
      if (host === 'a' && event === 'drop')
        world.rows = world.rows.map((x) =>
          x.name === 'd' ? { ...x, healthy: false, problem: 'connection refused' } : x,
        );
    };
    const { run, acts } = await roll(world, ['a', 'b', 'c']);
    assert.equal(run('a').status, 'changed');
    assert.equal(run('c').status, 'failed');
    assert.equal(run('c').error?.code, 'provision-refused');
    assert.match(
      run('c').error?.message ?? '',
      /^c: restarting c is refused: voter d \(connection refused\) is not healthy\. .*Nothing was changed on it\.$/,
    );
    assert.equal(run('b').error?.message, 'b: not started: the rollout stopped at c');
    assert.deepEqual(acts, ['a backup', 'a apply', 'a drop'], 'nothing ran on c or b');
  });

  it('a move-leader that fails stops before the leader is touched', async () => {
    const world: World = {
      rows: three(),
      events: [],
      moveLeaderError: new K3sEtcdError(
        'etcd-unreachable',
        'move-leader from b to a failed: etcdserver: request timed out',
      ),
    };
    const { run, acts } = await roll(world, ['a', 'b', 'c']);
    assert.equal(run('a').status, 'changed');
    assert.equal(run('c').status, 'changed');
    assert.equal(run('b').status, 'failed');
    assert.equal(run('b').error?.code, 'etcd-unreachable');
    assert.equal(
      run('b').error?.message,
      'b: move-leader from b to a failed: etcdserver: request timed out: nothing was changed on it',
    );
    assert.deepEqual(acts.slice(-1), ['b move-leader a']);
    assert.ok(!acts.some((a) => a.startsWith('b backup') || a.startsWith('b apply')));
  });

  it('the leader is not restarted when no follower is caught up to take over', async () => {
    const world: World = {
      rows: [
        row('a', { raftIndex: 100 }),
        row('b', { isLeader: true, raftIndex: 5000 }),
        row('c', { raftIndex: 200 }),
      ],
      events: [],
    };
    const { run, acts } = await roll(world, ['b']);
    assert.equal(run('b').status, 'failed');
    assert.equal(run('b').error?.code, 'provision-refused');
    assert.equal(
      run('b').error?.message,
      'b: b leads and no other voter is caught up to take over: nothing was changed on it',
    );
    assert.deepEqual(acts, [], 'no move-leader, no backup, no apply');
  });

  it('a member not healthy in time gets its previous files back, on exactly that host; the rest are not started', async () => {
    const world: World = { rows: three(), events: [] };
    const set = (name: string, over: Partial<MemberRow>) => {
      world.rows = world.rows.map((x) => {
        if (x.name !== name) return x;
        const { problem: _was, ...rest } = x;
        return { ...rest, ...over };
      });
    };
    world.after = (host, event) => {
      if (host === 'a' && event === 'apply')
        set('a', { healthy: false, problem: 'connection refused' });
      if (host === 'a' && event === 'restore') set('a', { healthy: true });
    };
    const t0 = Date.now();
    const { run, acts } = await roll(world, ['a', 'b', 'c'], 600);
    assert.ok(Date.now() - t0 < 10_000, 'the short deadline was used');
    assert.deepEqual(acts, ['a backup', 'a apply', 'a restore', 'a drop']);
    assert.equal(run('a').status, 'failed');
    assert.match(
      run('a').error?.message ?? '',
      /^a: a was changed but is not healthy and caught up within 1 s: a is not healthy \(connection refused\) \(its previous files were put back and etcd restarted on them: a is healthy again\)$/,
    );
    for (const h of ['b', 'c'])
      assert.equal(
        run(h).error?.message,
        `${h}: not started: the rollout stopped at a, which failed`,
      );
    const restore = world.events.find((e) => e.event === 'restore')?.detail ?? '';
    assert.match(restore, /^B=\/var\/tmp\/\.k3s-etcd-rollback-a00001$/m, "a's own rollback set");
  });

  it('a failure on the second member: the first stays changed, the second is put back, the third is not started', async () => {
    const world: World = { rows: three(), events: [], failApply: new Set(['c']) };
    const { run, acts, lines } = await roll(world, ['a', 'b', 'c']);
    assert.equal(run('a').status, 'changed', 'the first stays changed');
    assert.equal(run('c').status, 'failed');
    assert.match(
      run('c').error?.message ?? '',
      /^c, step 2 "start etcd": etcd did not start: flag provided but not defined \(its previous files were put back and etcd restarted on them: c is healthy again\)$/,
    );
    assert.equal(run('b').error?.message, 'b: not started: the rollout stopped at c, which failed');
    assert.deepEqual(acts, [
      'a backup',
      'a apply',
      'a drop',
      'c backup',
      'c apply',
      'c restore',
      'c drop',
    ]);
    assert.ok(
      lines.some((l) => l === '[b] b: not started: the rollout stopped at c, which failed'),
      lines.join('\n'),
    );
  });
});
