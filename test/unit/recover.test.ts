/**
 * Recovering from quorum loss, the parts that read no host: the survivor chosen over tables (the
 * most advanced, never one behind; --member refused naming who is ahead and by how much), the
 * plan refused while quorum exists, what each other member's data becomes and the modal's words,
 * the host's answer read as hostile input, and the scripts: the one-shot force-new-cluster
 * drop-in, the env file naming the survivor alone, valid POSIX sh.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { K3sEtcdError } from '../../src/core/errors';
import { renderScript } from '../../src/core/plan/render';
import {
  chooseSurvivor,
  type Detection,
  type MemberSeen,
  type SeenStatus,
} from '../../src/core/recover/choose';
import { hostCommand, parseHostAnswer } from '../../src/core/recover/detect';
import { asidePlan, survivorEnv, survivorPlan } from '../../src/core/recover/hostPlans';
import {
  FORCE_DROP_IN,
  planRecover,
  recoverConfirmDetail,
  recoverQuestion,
} from '../../src/core/recover/plan';
import { cluster, host } from '../fixtures/inventory';

const st = (
  raftIndex: number,
  raftTerm: number,
  revision: number,
  extra: Partial<SeenStatus> = {},
) =>
  ({
    id: `${raftIndex}a`,
    raftIndex: String(raftIndex),
    raftTerm: String(raftTerm),
    revision: String(revision),
    leader: '0',
    isLearner: false,
    errors: ['etcdserver: no leader'],
    ...extra,
  }) satisfies SeenStatus;

const up = (name: string, s: SeenStatus): MemberSeen => ({
  host: name,
  member: name,
  address: '127.0.0.1',
  endpoint: `https://${name}:2379`,
  status: s,
  onHost: { activeState: 'active', activeSince: 'x', inactiveSince: '', hasData: true },
});
const down = (name: string, dbRevision?: string, hasData = true): MemberSeen => ({
  host: name,
  member: name,
  address: '127.0.0.1',
  endpoint: `https://${name}:2379`,
  statusProblem: 'connect ECONNREFUSED',
  onHost: {
    activeState: 'inactive',
    activeSince: '',
    inactiveSince: 'Mon 2026-12-07 10:00:00 UTC',
    hasData,
    ...(dbRevision ? { dbRevision } : {}),
  },
});

const refused = (f: () => unknown, re: RegExp) =>
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof K3sEtcdError && e.code === 'recover-refused', String(e));
    assert.match(e.message, re);
    return true;
  });

describe('recover: the survivor', () => {
  const table: { name: string; members: MemberSeen[]; want: string }[] = [
    {
      name: 'the highest raft index wins over a higher term or revision',
      members: [up('a', st(100, 9, 90)), up('b', st(120, 3, 80)), up('c', st(110, 9, 95))],
      want: 'b',
    },
    {
      name: 'equal raft index: the higher term',
      members: [up('a', st(100, 3, 90)), up('b', st(100, 4, 90))],
      want: 'b',
    },
    {
      name: 'equal index and term: the higher revision',
      members: [up('a', st(100, 4, 91)), up('b', st(100, 4, 90))],
      want: 'a',
    },
    {
      name: 'a learner is never chosen, even ahead',
      members: [up('a', st(100, 4, 90)), up('b', st(200, 4, 190, { isLearner: true }))],
      want: 'a',
    },
    {
      name: 'a stopped member whose database is ahead of every answering one',
      members: [up('a', st(100, 4, 90)), down('b', '95')],
      want: 'b',
    },
    {
      name: 'a stopped member level with or behind the answering one is not chosen',
      members: [up('a', st(100, 4, 90)), down('b', '90'), down('c', '12')],
      want: 'a',
    },
    {
      name: 'nobody answers: the most advanced database on the hosts',
      members: [down('a', '40'), down('b', '41'), down('c', undefined, false)],
      want: 'b',
    },
    {
      name: 'ranks by number, not by text (9 < 10)',
      members: [up('a', st(9, 1, 9)), up('b', st(10, 1, 10))],
      want: 'b',
    },
  ];
  for (const row of table)
    it(row.name, () => {
      assert.equal(chooseSurvivor(row.members).survivor.host, row.want);
      // The order of the inventory never matters.
      assert.equal(chooseSurvivor([...row.members].reverse()).survivor.host, row.want);
    });

  it('--member behind a reachable member is refused, naming it and by how much', () => {
    const ms = [up('a', st(130, 5, 90)), up('b', st(118, 5, 88))];
    refused(
      () => chooseSurvivor(ms, 'b'),
      /b is behind a, which is ahead by 12 raft entries \(raft index 130 vs 118\)/,
    );
    refused(
      () => chooseSurvivor([up('a', st(100, 5, 90)), down('b', '97')], 'a'),
      /a is behind b, which is ahead by 7 revisions \(revision 97 vs 90\)/,
    );
  });

  it('--member level with the best, or ahead, is taken; unknown, learners and empty ones are refused', () => {
    const ms = [up('a', st(100, 5, 90)), up('b', st(100, 5, 90)), down('c', undefined, false)];
    assert.equal(chooseSurvivor(ms, 'b').survivor.host, 'b');
    refused(() => chooseSurvivor(ms, 'zz'), /No member "zz"/);
    refused(() => chooseSurvivor(ms, 'c'), /c cannot be the survivor: it has no data dir/);
    refused(
      () => chooseSurvivor([up('a', st(100, 5, 90, { isLearner: true }))], 'a'),
      /a is a learner/,
    );
  });

  it('a member with data whose revision could not be read refuses the choice, by name, unless --member', () => {
    const unreadable: MemberSeen = {
      ...down('c'),
      onHost: {
        ...down('c').onHost!,
        dbProblem: 'not enough room in /tmp for a copy of the database (70000 KB)',
      },
    };
    for (const ms of [
      [up('a', st(100, 5, 90)), down('b', '80'), unreadable],
      [down('a', '90'), unreadable],
    ])
      refused(
        () => chooseSurvivor(ms),
        /^c has a data dir but its database's revision could not be read \(not enough room in \/tmp for a copy of the database \(70000 KB\)\): it may be ahead of a \(.*\).*Fix what stopped the read and run recover again, or give --member a/,
      );
    assert.equal(
      chooseSurvivor([up('a', st(100, 5, 90)), unreadable], 'a').survivor.host,
      'a',
      'chosen by name: taken',
    );
    // No data dir at all: nothing to lose there.
    assert.equal(
      chooseSurvivor([up('a', st(100, 5, 90)), down('c', undefined, false)]).survivor.host,
      'a',
    );
  });

  it('no member with data: refused, pointing at a snapshot restore', () => {
    refused(
      () => chooseSurvivor([down('a', undefined, false), down('b')]),
      /No member can be recovered from.*snapshot restore/,
    );
  });
});

describe('recover: the plan', () => {
  const hosts = [
    host('edge-1', '127.0.1.151'),
    host('edge-2', '127.0.1.152'),
    host('edge-3', '127.0.1.153'),
    host('k3s-1', '127.0.1.155', { roles: ['k3s-server'] }),
  ];
  const c = cluster('/tmp/pki', hosts);
  const detection = (quorum: boolean, members: MemberSeen[]): Detection => ({
    cluster: c.name,
    at: '2026-12-07T10:00:00Z',
    members,
    quorum: { ok: quorum, why: quorum ? 'edge-1 serves a quorum read' : 'no member serves' },
  });
  const seen = [
    { ...up('edge-1', st(130, 7, 121)), endpoint: 'https://127.0.1.151:2379' },
    down('edge-2', undefined, false),
    { ...down('edge-3', '118') },
  ];
  const now = new Date('2026-12-07T10:11:12Z');

  it('is refused while the cluster has quorum, pointing at member replace', () => {
    refused(
      () => planRecover(c, detection(true, seen)),
      /Nothing to recover: cluster edge-t still has quorum.*k3s-etcd member replace/,
    );
  });

  it("names the survivor with its raft index and what each other member's data becomes", () => {
    const plan = planRecover(c, detection(false, seen), { now });
    assert.equal(plan.survivor.host, 'edge-1');
    assert.equal(
      recoverQuestion(plan),
      'Recover etcd cluster edge-t from edge-1 (raft index 130)?',
    );
    const detail = recoverConfirmDetail(plan);
    assert.match(
      detail,
      /^Survivor: edge-1 \(member edge-1, raft index 130, term 7, revision 121\)/,
    );
    assert.match(detail, /^edge-2: has no data dir \(nothing to keep\)/m);
    assert.match(
      detail,
      /^edge-3: its data \(down; its database is at revision 118\) is moved aside to \/var\/lib\/etcd\.recover-20261207T101112Z \(kept, never deleted\)/m,
    );
    assert.match(detail, /snapshot of edge-1's data is saved in backups\/edge-t\//);
    assert.match(detail, /Then restart K3s on k3s-1, one at a time\./);
    assert.deepEqual(
      plan.others.map((o) => [o.host, o.fate]),
      [
        ['edge-2', 'no-data'],
        ['edge-3', 'moved-aside'],
      ],
    );
    // The snapshot comes first, the re-adds one at a time after the survivor runs alone.
    assert.match(plan.steps[0]!, /^save a snapshot of edge-1's data/);
    assert.match(plan.steps.at(-2)!, /check that 3 members answer healthy/);
  });

  it('a host unreachable over SSH is left as it is and not re-added, with what to do', () => {
    const plan = planRecover(
      c,
      detection(false, [
        seen[0]!,
        {
          host: 'edge-2',
          member: 'edge-2',
          address: '127.0.1.152',
          endpoint: 'https://127.0.1.152:2379',
          statusProblem: 'timeout',
          sshProblem: 'timeout',
        },
        seen[2]!,
      ]),
      { now },
    );
    assert.equal(plan.others[0]!.fate, 'unreachable');
    assert.match(plan.others[0]!.words, /not re-added.*k3s-etcd member add edge-2/);
  });

  it('the survivor starts once with --force-new-cluster from a volatile drop-in, removed before the normal restart', () => {
    const plan = planRecover(c, detection(false, seen), { now });
    const env = [
      'ETCD_NAME=edge-1',
      'ETCD_INITIAL_ADVERTISE_PEER_URLS=https://127.0.1.151:2380',
      'ETCD_INITIAL_CLUSTER=edge-1=https://127.0.1.151:2380,edge-2=https://127.0.1.152:2380,edge-3=https://127.0.1.153:2380',
      'ETCD_INITIAL_CLUSTER_TOKEN=restored-token',
      'ETCD_INITIAL_CLUSTER_STATE=new',
      'ETCD_CLIENT_CERT_AUTH=true',
      '',
    ].join('\n');
    const p = survivorPlan(c, plan, hosts[0]!, { env, binDir: '/usr/local/bin' });
    const ids = p.steps.map((s) => s.id);
    assert.ok(FORCE_DROP_IN.startsWith('/run/'), 'gone at the next boot');
    for (const [a, b] of [
      ['stop', 'force'],
      ['force', 'force-start'],
      ['force-start', 'force-up'],
      ['force-up', 'force-off'],
      ['force-off', 'restart'],
      ['restart', 'healthy'],
    ] as const)
      assert.ok(ids.indexOf(a) < ids.indexOf(b), `${a} before ${b}: ${ids.join(' ')}`);
    const script = renderScript(p);
    assert.match(script, /Environment=ETCD_FORCE_NEW_CLUSTER=true/);
    assert.match(
      script,
      /rm -f \/run\/systemd\/system\/etcd\.service\.d\/k3s-etcd-force-new-cluster\.conf\n/,
    );
    assert.equal(spawnSync('/bin/sh', ['-n'], { input: script, encoding: 'utf8' }).status, 0);
    assert.equal(
      survivorEnv(c, hosts[0]!, env),
      [
        'ETCD_NAME=edge-1',
        'ETCD_INITIAL_ADVERTISE_PEER_URLS=https://127.0.1.151:2380',
        'ETCD_INITIAL_CLUSTER=edge-1=https://127.0.1.151:2380',
        'ETCD_INITIAL_CLUSTER_TOKEN=restored-token',
        'ETCD_INITIAL_CLUSTER_STATE=existing',
        'ETCD_CLIENT_CERT_AUTH=true',
        '',
      ].join('\n'),
    );
    const aside = renderScript(asidePlan(plan, hosts[2]!));
    assert.match(aside, /mv \/var\/lib\/etcd \/var\/lib\/etcd\.recover-20261207T101112Z/);
    assert.doesNotMatch(aside, /rm -rf/, 'the data is never deleted');
    assert.equal(spawnSync('/bin/sh', ['-n'], { input: aside, encoding: 'utf8' }).status, 0);
  });
});

describe('recover: what a host says', () => {
  it('reads systemd, the data dir and the database revision; anything else is dropped', () => {
    const seen = parseHostAnswer(
      [
        'ActiveState=failed',
        'ActiveEnterTimestamp=Mon 2026-12-07 09:00:00 UTC',
        'InactiveEnterTimestamp=Mon 2026-12-07 10:00:00 UTC\u001b[31m',
        'has_data=1',
        'db_status={"hash":2276138816,"revision":18446744073709551,"totalKey":16,"totalSize":20480}',
        'ETCD_FORCE_NEW_CLUSTER=true',
      ].join('\n'),
    );
    assert.deepEqual(seen, {
      activeState: 'failed',
      activeSince: 'Mon 2026-12-07 09:00:00 UTC',
      inactiveSince: 'Mon 2026-12-07 10:00:00 UTC\\x1b[31m',
      hasData: true,
      dbRevision: '18446744073709551',
    });
    assert.equal(parseHostAnswer('ActiveState=$(reboot)').activeState, '');
    assert.match(parseHostAnswer('db_status=garbage').dbProblem ?? '', /did not say a revision/);
  });

  it('the host command is valid sh and reads the database only from a copy', () => {
    const cmd = hostCommand('/var/lib/etcd');
    assert.equal(spawnSync('/bin/sh', ['-n'], { input: cmd, encoding: 'utf8' }).status, 0);
    assert.match(cmd, /cp \/var\/lib\/etcd\/member\/snap\/db "\$f"/);
    assert.match(cmd, /snapshot status "\$f"/);
  });
});
