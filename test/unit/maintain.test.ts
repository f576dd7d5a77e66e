/**
 * Maintenance, pure: the rule that picks who needs defragmentation, the compaction decision, the
 * alarm rule, the defragmentation deadline sized to the database, the order (followers first,
 * the leader last, after a hand-over; a member down refuses, the rescue skips it), the run over
 * a scripted cluster, and the report's words and files. The real thing runs in
 * test/integration/maintain.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  compactionDecision,
  DEFAULT_DEFRAG_RULE,
  mayDisarm,
  needsDefrag,
  parseSize,
  ruleFrom,
  suggestedQuota,
} from '../../src/core/maintain/rule';
import { classifyEtcdError } from '../../src/core/etcd/problems';
import { defragOrder, defragTimeoutMs, rollingDefrag } from '../../src/core/rolling/defrag';
import type { LiveCluster } from '../../src/core/rolling/live';
import type { MemberRow } from '../../src/core/rolling/order';
import {
  renderPlan,
  renderReport,
  reportBaseName,
  writeReport,
} from '../../src/core/maintain/report';
import { disarmVerdict, type MaintenancePlan } from '../../src/core/maintain/maintain';
import { localStamp } from '../../src/core/format/stamp';
import { setEtcdQuota } from '../../src/core/inventory/edit';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { writeFile } from 'node:fs/promises';
import { main } from '../../src/cli/main';
import { captureIO } from '../fixtures/cli';
import type { MaintenanceReport } from '../../src/core/maintain/maintain';
import type { MemberReading, Survey } from '../../src/core/maintain/survey';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const row = (name: string, over: Partial<MemberRow> = {}): MemberRow => ({
  name,
  id: `${name}1d`,
  voter: true,
  endpoint: `https://${name}:2379`,
  healthy: true,
  isLeader: false,
  raftIndex: 100,
  ...over,
});

describe('maintain: the rule', () => {
  it('defragments a file more than half free and over 64 MiB, or over 80% of its quota', () => {
    const q = 2 * GiB;
    assert.equal(
      needsDefrag({ name: 'a', dbBytes: 200 * MiB, inUseBytes: 80 * MiB, quotaBytes: q }).needed,
      true,
    );
    assert.match(
      needsDefrag({ name: 'a', dbBytes: 200 * MiB, inUseBytes: 80 * MiB, quotaBytes: q }).why,
      /60% of its 210 MB file is free \(over 50%, file over 67 MB\)/,
    );
    // Half free exactly, or small: left alone, and the dry run says why.
    assert.equal(
      needsDefrag({ name: 'a', dbBytes: 200 * MiB, inUseBytes: 100 * MiB, quotaBytes: q }).needed,
      false,
    );
    const small = needsDefrag({ name: 'a', dbBytes: 40 * MiB, inUseBytes: 1 * MiB, quotaBytes: q });
    assert.equal(small.needed, false);
    assert.match(small.why, /the file is only 42 MB/);
    // Near the quota, however little is free.
    const full = needsDefrag({
      name: 'a',
      dbBytes: 30 * MiB,
      inUseBytes: 29 * MiB,
      quotaBytes: 32 * MiB,
    });
    assert.equal(full.needed, true);
    assert.match(full.why, /94% of its 34 MB quota \(over 80%\)/);
    // Unknown size: never.
    assert.equal(needsDefrag({ name: 'a', quotaBytes: q }).needed, false);
  });

  it('takes its thresholds from flags and settings, refusing nonsense', () => {
    assert.deepEqual(ruleFrom({ freeShare: 0.3, minDbBytes: parseSize('1GiB') }), {
      ...DEFAULT_DEFRAG_RULE,
      freeShare: 0.3,
      minDbBytes: GiB,
    });
    assert.match(String(ruleFrom({ quotaShare: 1.5 })), /between 0 and 1/);
    assert.match(String(ruleFrom({ minDbBytes: parseSize('lots') })), /64MiB/);
    assert.equal(parseSize('64MiB'), 64 * MiB);
    assert.equal(parseSize('512'), 512);
  });

  it('skips a recent compaction (K3s compacts every 5 minutes), forces it in the rescue', () => {
    const recent = compactionDecision({
      revision: 12_000,
      compactRevision: 11_000,
      apiServerCompacts: true,
    });
    assert.equal(recent.compact, false);
    assert.match(
      recent.why,
      /compaction skipped: last compacted at revision 11000, 1000 revisions ago.*API server compacts the history every 5 minutes/,
    );
    const old = compactionDecision({
      revision: 50_000,
      compactRevision: 1_000,
      apiServerCompacts: false,
    });
    assert.equal(old.compact, true);
    assert.equal(old.revision, 50_000);
    assert.match(old.why, /no API server compacts this etcd/);
    assert.equal(
      compactionDecision({ revision: 500, apiServerCompacts: false }).compact,
      true,
      'never compacted',
    );
    assert.equal(
      compactionDecision(
        { revision: 12_000, compactRevision: 11_000, apiServerCompacts: true },
        DEFAULT_DEFRAG_RULE,
        true,
      ).compact,
      true,
    );
    assert.equal(
      compactionDecision(
        { revision: 7, compactRevision: 7, apiServerCompacts: false },
        DEFAULT_DEFRAG_RULE,
        true,
      ).compact,
      false,
    );
  });

  it('disarms only when every member is under its quota with headroom', () => {
    const q = 32 * MiB;
    assert.equal(
      mayDisarm([
        { name: 'a', dbBytes: 10 * MiB, quotaBytes: q },
        { name: 'b', dbBytes: 12 * MiB, quotaBytes: q },
      ]).needed,
      true,
    );
    const full = mayDisarm([
      { name: 'a', dbBytes: 10 * MiB, quotaBytes: q },
      { name: 'b', dbBytes: 30 * MiB, quotaBytes: q },
    ]);
    assert.equal(full.needed, false);
    assert.match(full.why, /b holds 31 MB of its 34 MB quota/);
    assert.match(mayDisarm([{ name: 'c', quotaBytes: q }]).why, /size of c could not be read/);
    assert.equal(suggestedQuota(30 * MiB, 32 * MiB), 64 * MiB);
    assert.equal(suggestedQuota(50 * MiB, 32 * MiB), 128 * MiB);
  });

  it('keeps NOSPACE armed while a voter is down, naming it and why (the rescue skipped it)', () => {
    const q = 32 * MiB;
    const member = (
      name: string,
      role: MemberReading['role'],
      over: Partial<MemberReading> = {},
    ): MemberReading => ({
      name,
      id: `${name}1d`,
      endpoint: `https://${name}:2379`,
      role,
      healthy: true,
      quotaBytes: q,
      quotaFrom: 'metrics',
      alarms: [],
      dbBytes: 2 * MiB,
      inUseBytes: 2 * MiB,
      verdict: { needed: true, why: 'x' },
      ...over,
    });
    /** Down: no size read, the reason it could not be. */
    const down = (name: string, role: MemberReading['role']): MemberReading => ({
      name,
      id: `${name}1d`,
      endpoint: `https://${name}:2379`,
      role,
      healthy: false,
      problem: `connection refused by ${name}:2379`,
      quotaBytes: q,
      quotaFrom: 'default',
      alarms: [],
      verdict: { needed: false, why: 'its size could not be read' },
    });
    const survey = (members: MemberReading[]): Survey => ({
      at: '2026-12-06T18:30:00.000Z',
      members,
      table: [],
      alarms: [{ member: 'm-1', alarm: 'NOSPACE' }],
      rule: DEFAULT_DEFRAG_RULE,
    });
    const answered = [member('m-1', 'leader'), member('m-2', 'follower')];

    const kept = disarmVerdict(survey([...answered, down('m-3', 'follower')]));
    assert.equal(kept.may.needed, false, 'a voter down may still be full: no disarm');
    assert.match(
      kept.may.why,
      /the alarm stays armed: the size of m-3 \(connection refused by m-3:2379\) could not be read/,
    );
    assert.equal(kept.quota, undefined, 'the members read have room: no larger quota offered');

    assert.equal(
      disarmVerdict(survey([...answered, member('m-3', 'follower')])).may.needed,
      true,
      'every voter read and under its quota: disarmed',
    );
    assert.equal(
      disarmVerdict(survey([...answered, down('m-4', 'learner')])).may.needed,
      true,
      'a learner down does not hold the alarm',
    );
    const full = disarmVerdict(
      survey([...answered, member('m-3', 'follower', { dbBytes: 31 * MiB, inUseBytes: 31 * MiB })]),
    );
    assert.match(full.may.why, /m-3 holds 33 MB of its 34 MB quota/);
    assert.equal(full.quota?.suggestedBytes, 64 * MiB);
  });

  it("NOSPACE's hint names the rescue: Maintain etcd… and k3s-etcd maintain --rescue", () => {
    // A write refused, and the health row's alarm list: the panel, the tree and `health` say it.
    for (const text of ['etcdserver: mvcc: database space exceeded', 'NOSPACE']) {
      const p = classifyEtcdError(new Error(text), 'https://127.0.0.1:2379');
      assert.equal(p.code, 'alarm');
      assert.match(p.hint, /^Run "Maintain etcd…" on the cluster, or k3s-etcd maintain --rescue:/);
      assert.match(p.hint, /etcdctl compact, defrag, then alarm disarm/, 'the hand way, second');
    }
  });

  it('sizes the deadline to the database: 60 s and 5 s per 100 MiB', () => {
    assert.equal(defragTimeoutMs(0), 60_000);
    assert.equal(defragTimeoutMs(32 * MiB), 65_000);
    assert.equal(defragTimeoutMs(100 * MiB), 65_000);
    assert.equal(defragTimeoutMs(2 * GiB), 60_000 + 21 * 5_000);
    assert.equal(defragTimeoutMs(8 * GiB), 60_000 + 82 * 5_000);
  });
});

describe('maintain: the order', () => {
  const table = [row('m-1', { isLeader: true }), row('m-2'), row('m-3')];

  it('goes followers first, the leader last', () => {
    assert.deepEqual(defragOrder(table, ['m-1', 'm-2', 'm-3']).order, ['m-2', 'm-3', 'm-1']);
    assert.deepEqual(defragOrder(table, ['m-1', 'm-3']).order, ['m-3', 'm-1']);
  });

  it('refuses while a member is down and names it; the rescue skips it', () => {
    const down = [
      table[0]!,
      row('m-2', { healthy: false, problem: 'connection refused' }),
      table[2]!,
    ];
    const refused = defragOrder(down, ['m-1', 'm-3']);
    assert.deepEqual(refused.order, []);
    assert.match(
      refused.refusal ?? '',
      /maintenance is refused: voter m-2 \(connection refused\) is not healthy/,
    );
    const rescue = defragOrder(down, ['m-1', 'm-2', 'm-3'], true);
    assert.deepEqual(rescue.order, ['m-3', 'm-1']);
    assert.deepEqual(rescue.skipped, [{ member: 'm-2', why: 'connection refused' }]);
  });

  it('runs one member at a time, hands the leadership over before the leader goes', async () => {
    let rows = table.map((r) => ({ ...r }));
    const calls: string[] = [];
    const live: LiveCluster = {
      probe: async () => rows.map((r) => ({ ...r })),
      moveLeader: async (from, to) => {
        calls.push(`move ${from.name}->${to.name}`);
        rows = rows.map((r) => ({ ...r, isLeader: r.name === to.name }));
      },
    };
    let busy = 0;
    const res = await rollingDefrag({
      live,
      members: ['m-1', 'm-2', 'm-3'],
      member: {
        size: async () => ({ dbBytes: 300 * MiB, inUseBytes: 10 * MiB }),
        defragment: async (endpoint, timeoutMs) => {
          busy++;
          assert.equal(busy, 1, 'one member at a time');
          calls.push(`defrag ${new URL(endpoint).hostname} ${timeoutMs}`);
          await new Promise((r) => setTimeout(r, 5));
          busy--;
        },
      },
    });
    assert.deepEqual(calls, [
      'defrag m-2 75000',
      'defrag m-3 75000',
      'move m-1->m-2',
      'defrag m-1 75000',
    ]);
    assert.deepEqual(res.order, ['m-2', 'm-3', 'm-1']);
    assert.equal(res.steps[2]?.role, 'leader');
    assert.equal(res.steps[2]?.leadershipTo, 'm-2');
    assert.equal(res.stopped, undefined);
  });

  it('stops between members when another one goes down, naming it', async () => {
    let n = 0;
    const live: LiveCluster = {
      probe: async () => {
        n++;
        // After the first member's turn m-3 stops answering.
        return n <= 3
          ? table
          : [table[0]!, table[1]!, row('m-3', { healthy: false, problem: 'timeout' })];
      },
      moveLeader: async () => assert.fail('no hand-over'),
    };
    const done: string[] = [];
    const res = await rollingDefrag({
      live,
      members: ['m-1', 'm-2'],
      member: {
        size: async () => ({ dbBytes: MiB, inUseBytes: MiB }),
        defragment: async (e) => void done.push(e),
      },
    });
    assert.deepEqual(done, ['https://m-2:2379']);
    assert.match(
      res.stopped ?? '',
      /defragmenting m-1 is refused: voter m-3 \(timeout\) is not healthy/,
    );
  });
});

describe('maintain: the report', () => {
  const reading = (
    name: string,
    role: MemberReading['role'],
    db: number,
    inUse: number,
  ): MemberReading => ({
    name,
    id: `${name}1d`,
    endpoint: `https://${name}:2379`,
    role,
    healthy: true,
    quotaBytes: 32 * MiB,
    quotaFrom: 'metrics',
    alarms: [],
    dbBytes: db,
    inUseBytes: inUse,
    verdict: { needed: true, why: 'x' },
  });
  const report: MaintenanceReport = {
    cluster: 'prod',
    rescue: true,
    startedAt: '2026-12-06T18:30:00.123Z',
    finishedAt: '2026-12-06T18:30:09.000Z',
    before: [
      reading('m-1', 'leader', 33 * MiB, 30 * MiB),
      reading('m-2', 'follower', 33 * MiB, 30 * MiB),
    ],
    after: [
      reading('m-1', 'follower', 2 * MiB, 2 * MiB),
      reading('m-2', 'leader', 2 * MiB, 2 * MiB),
    ],
    rule: DEFAULT_DEFRAG_RULE,
    compaction: { why: 'compacting at revision 900', done: true, revision: 900 },
    defrag: {
      order: ['m-2', 'm-1'],
      leader: 'm-1',
      skipped: [],
      steps: [
        {
          member: 'm-2',
          endpoint: 'https://m-2:2379',
          role: 'follower',
          beforeBytes: 33 * MiB,
          afterBytes: 2 * MiB,
          timeoutMs: 65_000,
          durationMs: 1200,
          ok: true,
        },
        {
          member: 'm-1',
          endpoint: 'https://m-1:2379',
          role: 'leader',
          leadershipTo: 'm-2',
          beforeBytes: 33 * MiB,
          afterBytes: 2 * MiB,
          timeoutMs: 65_000,
          durationMs: 900,
          ok: true,
        },
      ],
    },
    alarms: {
      before: [{ member: 'm-1', alarm: 'NOSPACE' }],
      disarmed: [{ member: 'm-1', alarm: 'NOSPACE' }],
    },
    keyspace: {
      revision: '900',
      keys: 12,
      bytes: 30 * MiB,
      resources: [{ resource: 'configmaps', keys: 3, bytes: 29 * MiB }],
      largest: [
        {
          key: '/registry/configmaps/kube-system/big`one',
          resource: 'configmaps',
          bytes: 20 * MiB,
        },
      ],
    },
    writeProbe: { ok: true },
    lines: ['compacted the history at revision 900'],
    ok: true,
  };

  it('says sizes before and after, the time each took, the order and what was done', () => {
    const md = renderReport(report);
    assert.match(md, /^# NOSPACE rescue of prod/);
    assert.match(
      md,
      /\| m-1 \| leader \| 35 MB \(31 MB in use\) \| 2\.1 MB \(2\.1 MB in use\) \| 34 MB \| 0\.90 s \|/,
    );
    assert.match(
      md,
      /1\. m-2 \(follower\): 35 MB → 2\.1 MB in 1\.2 s \(deadline 65 s\)\n2\. m-1 \(leader, the leadership handed to m-2 first\): 35 MB → 2\.1 MB in 0\.90 s/,
    );
    assert.match(md, /Disarmed: NOSPACE on m-1\./);
    assert.match(md, /a probe key was put and deleted/);
    assert.match(md, /\| configmaps \| 3 \| 30 MB \|/);
    assert.match(md, /- `\/registry\/configmaps\/kube-system\/big'one` 21 MB/);
    assert.equal(reportBaseName(report), 'rescue-prod-20261206T183000Z');
  });

  it("times: ISO 8601 in the file (and the CLI), the editor's one format on the page it opens", async () => {
    // The file as written: ISO, like the JSON beside it.
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-maintain-report-'));
    try {
      const files = await writeReport(dir, report);
      const onDisk = await readFile(files.markdown, 'utf8');
      assert.match(
        onDisk,
        /^- Started 2026-12-06T18:30:00\.123Z, finished 2026-12-06T18:30:09\.000Z: /m,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // The page: local time with the zone (here at UTC+1), no ISO left.
    const page = renderReport(report, (iso) => localStamp(iso, 60));
    assert.match(
      page,
      /^- Started 2026-12-06 19:30:00 UTC\+1, finished 2026-12-06 19:30:09 UTC\+1: /m,
    );
    assert.doesNotMatch(page, /\d{4}-\d\d-\d\dT\d\d:/);
  });

  it('the dry run: each member with its sizes, one verdict said once when all share it', () => {
    const plan = (
      members: MemberReading[],
      extra: Partial<MaintenancePlan> = {},
    ): MaintenancePlan => ({
      cluster: 'prod',
      rescue: false,
      survey: {
        at: '',
        members,
        table: [],
        alarms: [],
        history: { revision: 900, compactRevision: 890, apiServerCompacts: true },
        compaction: { compact: false, revision: 900, why: 'compaction skipped: recent' },
        rule: DEFAULT_DEFRAG_RULE,
      },
      defrag: { order: ['m-2', 'm-1'], leader: 'm-1', skipped: [] },
      nothingToDo: false,
      ...extra,
    });
    const same = renderPlan(plan(report.before));
    assert.deepEqual(same.slice(1), [
      '  m-1 (leader): 35 MB (31 MB in use) of 34 MB quota',
      '  m-2 (follower): 35 MB (31 MB in use) of 34 MB quota',
      '  every member: defragment: x',
      'Compaction: compaction skipped: recent',
      'Order (one at a time, followers first, the leader last): m-2, m-1',
    ]);
    const mixed = renderPlan(
      plan(
        [
          report.before[0]!,
          {
            name: 'm-2',
            id: 'm-21d',
            role: 'follower',
            healthy: false,
            problem: 'connection refused',
            quotaBytes: 32 * MiB,
            quotaFrom: 'default',
            alarms: [],
            verdict: { needed: false, why: 'its size could not be read' },
          },
        ],
        {
          refusal: 'maintenance is refused: voter m-2 (connection refused) is not healthy',
          defrag: { order: [], skipped: [] },
        },
      ),
    );
    assert.deepEqual(mixed.slice(1, 4), [
      '  m-1 (leader): 35 MB (31 MB in use) of 34 MB quota',
      '    defragment: x',
      '  m-2 (follower): not read — not healthy: connection refused',
    ]);
    assert.equal(
      mixed.at(-1),
      'Refused: maintenance is refused: voter m-2 (connection refused) is not healthy',
    );
  });

  it('is written as Markdown and JSON, 0600, in .k3s-etcd/reports', async () => {
    const root = await mkdtemp(join(tmpdir(), 'k3s-etcd-maintain-'));
    try {
      const files = await writeReport(root, report);
      assert.equal(files.markdown, join(root, '.k3s-etcd/reports/rescue-prod-20261206T183000Z.md'));
      for (const f of [files.markdown, files.json])
        assert.equal((await stat(f)).mode & 0o777, 0o600);
      assert.equal((await stat(join(root, '.k3s-etcd/reports'))).mode & 0o777, 0o700);
      assert.deepEqual(JSON.parse(await readFile(files.json, 'utf8')).defrag.order, ['m-2', 'm-1']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('maintain: the rescue raises the quota in the inventory', () => {
  it('adds etcd.quotaBackendBytes, then replaces it in place, comments kept', async () => {
    const root = await mkdtemp(join(tmpdir(), 'k3s-etcd-quota-'));
    try {
      const file = join(root, 'k3s-etcd.yaml');
      await writeFile(
        file,
        [
          'version: 1',
          'clusters:',
          '  - name: prod # the one',
          '    hosts:',
          '      - { name: a, address: 10.0.0.1, roles: [etcd] }',
          '',
        ].join('\n'),
      );
      assert.equal(await setEtcdQuota(file, 'prod', '4GiB'), undefined);
      let inv = await loadInventoryFile(file);
      assert.equal(inv.status, 'ok');
      if (inv.status === 'ok')
        assert.equal(inv.inventory.clusters[0]?.etcd.tuning.quotaBackendBytes, 4 * GiB);
      assert.match(await readFile(file, 'utf8'), /# the one/);
      assert.equal(await setEtcdQuota(file, 'prod', '8GiB'), '4GiB');
      inv = await loadInventoryFile(file);
      if (inv.status === 'ok')
        assert.equal(inv.inventory.clusters[0]?.etcd.tuning.quotaBackendBytes, 8 * GiB);
      await assert.rejects(setEtcdQuota(file, 'prod', '8 GiB; rm -rf /'), /not a size/);
      await assert.rejects(setEtcdQuota(file, 'other', '8GiB'), /Cannot find cluster other/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('maintain: the command line', () => {
  it('refuses a rule out of range and --raise-quota without --rescue, before connecting', async () => {
    for (const [args, want] of [
      [['maintain', '--free-share', '2'], /the free share is a share between 0 and 1/],
      [['maintain', '--min-size', 'big'], /the minimum size is a size such as 64MiB/],
      [['maintain', '--raise-quota', '4GiB'], /--raise-quota goes with --rescue/],
    ] as const) {
      const run = captureIO('/nonexistent');
      assert.equal(await main([...args], run.io), 2, run.out.join('\n'));
      assert.match(run.out.join('\n'), want);
    }
  });
});
