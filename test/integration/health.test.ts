/**
 * Health, status and members against a real mutual-TLS etcd, checked against etcdctl's own JSON,
 * and the failure cases a user meets: a stopped member, a paused one, an alarm, wrong TLS files.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../fixtures/cli';
import { clusterSnapshot } from '../../src/core/etcd/checks';
import { createEndpointClient } from '../../src/core/etcd/client';
import { generateCertificateSet } from '../../src/core/pki/set';
import { etcdctl, type EtcdCluster } from '../../scripts/harness/etcd';
import { tlsFlags } from '../../scripts/harness/etcdTls';
import { admin, cluster, etcdWithOurCerts, host, testScope } from './harness/tlsCluster';

const { tempDir, track } = testScope('k3s-etcd-health-');

/** etcdctl's JSON with uint64 numbers kept exact (they overflow JS numbers). */
function parseEtcdctlJson(text: string): unknown {
  return JSON.parse(text.replace(/(:\s*)(\d{16,})/g, '$1"$2"'));
}

const hex = (decimal: string | number) => BigInt(decimal).toString(16);

/** `--endpoints … --cacert … --cert … --key …` for the CLI. */
function target(
  endpoints: string[],
  tls: { caFile: string; certFile: string; keyFile: string },
): string[] {
  return ['--endpoints', endpoints.join(','), ...tlsFlags(tls)];
}

/** The CLI in-process, as a script would run it (not interactive, from this folder). */
const cli = (args: string[]) => runCli(args, { cwd: process.cwd() });

describe('health, status and members on a real 3-member mutual-TLS etcd', () => {
  let etcd: EtcdCluster;
  let dir: string;

  it('agree with etcdctl -w json, field by field', async () => {
    dir = await tempDir();
    ({ etcd } = await etcdWithOurCerts(dir, 3, { track }));
    const tls = admin(dir);
    const snap = await clusterSnapshot(etcd.endpoints, { tls });
    assert.equal(snap.healthy, true);

    const h = await etcdctl(etcd, ['endpoint', 'health', '-w', 'json'], {
      tls,
      endpoints: etcd.endpoints,
    });
    assert.equal(h.code, 0, h.stderr);
    const theirHealth = parseEtcdctlJson(h.stdout) as Array<{ endpoint: string; health: boolean }>;
    assert.deepEqual(
      snap.health.map((r) => [r.endpoint, r.health]).sort(),
      theirHealth.map((r) => [r.endpoint, r.health]).sort(),
    );

    const s = await etcdctl(etcd, ['endpoint', 'status', '-w', 'json'], {
      tls,
      endpoints: etcd.endpoints,
    });
    assert.equal(s.code, 0, s.stderr);
    const theirStatus = parseEtcdctlJson(s.stdout) as Array<{
      Endpoint: string;
      Status: {
        header: { member_id: string };
        version: string;
        leader: string;
        raftTerm: number;
        raftIndex: number;
        dbSize: number;
      };
    }>;
    for (const t of theirStatus) {
      const ours = snap.status.find((r) => r.endpoint === t.Endpoint);
      assert.ok(ours, t.Endpoint);
      assert.equal(ours.id, hex(t.Status.header.member_id), 'member ID in hex');
      assert.equal(ours.version, t.Status.version);
      assert.equal(ours.leader, hex(t.Status.leader));
      assert.equal(ours.isLeader, hex(t.Status.leader) === hex(t.Status.header.member_id));
      assert.equal(ours.raftTerm, String(t.Status.raftTerm));
      assert.ok(
        Math.abs(Number(ours.raftIndex) - t.Status.raftIndex) <= 20,
        `raft index ${ours.raftIndex} vs ${t.Status.raftIndex}`,
      );
      assert.ok(ours.dbSize > 0);
    }
    assert.equal(snap.status.filter((r) => r.isLeader).length, 1, 'exactly one leader');

    const m = await etcdctl(etcd, ['member', 'list', '-w', 'json'], {
      tls,
      endpoints: etcd.endpoints,
    });
    const theirMembers = parseEtcdctlJson(m.stdout) as {
      members: Array<{ ID: string; name: string; peerURLs: string[]; clientURLs: string[] }>;
    };
    assert.deepEqual(
      snap.members.map((x) => [x.id, x.name, x.peerUrls, x.clientUrls]).sort(),
      theirMembers.members.map((x) => [hex(x.ID), x.name, x.peerURLs, x.clientURLs]).sort(),
    );
    const leaderName = snap.members.find(
      (x) => x.id === snap.status.find((r) => r.isLeader)?.id,
    )?.name;
    assert.equal(snap.summary, `3/3 healthy, leader ${leaderName}`);

    const table = await cli(['health', ...target(etcd.endpoints, tls)]);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /\| +ENDPOINT +\| HEALTH \| +TOOK +\| ERROR \|/);
    assert.equal(table.out.match(/\| true +\|/g)?.length, 3);
    const status = await cli(['status', '--json', ...target(etcd.endpoints, tls)]);
    assert.equal(status.code, 0, status.err);
    assert.equal((JSON.parse(status.out) as unknown[]).length, 3);
  });

  it('a stopped member is "connection refused" within the timeout, the others stay healthy, and it recovers', async () => {
    const tls = admin(dir);
    const victim = etcd.members[2]!;
    await etcd.stopMember(victim.name);
    const t0 = performance.now();
    const snap = await clusterSnapshot(etcd.endpoints, { tls, timeoutMs: 2000 });
    assert.ok(performance.now() - t0 < 4000, 'answers within the timeout');
    const dead = snap.health.find((r) => r.endpoint === victim.clientUrl);
    assert.equal(dead?.health, false);
    assert.equal(dead?.problem?.code, 'refused');
    assert.match(dead?.problem?.summary ?? '', /connection refused by 127\.0\.1\.\d+:\d+/);
    assert.equal(snap.health.filter((r) => r.health).length, 2);
    assert.match(snap.summary, /^2\/3 healthy, leader \S+/);
    assert.equal(snap.members.length, 3, 'the member list still comes from a live member');
    const down = await cli(['health', ...target(etcd.endpoints, tls), '--timeout', '2000']);
    assert.equal(down.code, 1);
    assert.match(down.err, /connection refused by .*etcd is not running on this member/);

    await etcd.startMember(victim.name);
    const back = await clusterSnapshot(etcd.endpoints, { tls, timeoutMs: 2000 });
    assert.equal(back.healthy, true, JSON.stringify(back.health.map((r) => r.problem)));
  });

  it('a paused member (SIGSTOP) is reported as not answering within the timeout', async () => {
    const tls = admin(dir);
    // A paused follower: pausing the leader would (rightly) leave no member able to answer
    // a linearizable read until a new leader is elected.
    const before = await clusterSnapshot(etcd.endpoints, { tls });
    const leaderUrl = before.status.find((r) => r.isLeader)?.endpoint;
    const victim = etcd.members.find((m) => m.clientUrl !== leaderUrl)!;
    process.kill(victim.pid, 'SIGSTOP');
    try {
      const t0 = performance.now();
      const snap = await clusterSnapshot(etcd.endpoints, { tls, timeoutMs: 1500 });
      assert.ok(
        performance.now() - t0 < 4000,
        `answered in ${(performance.now() - t0).toFixed(0)} ms`,
      );
      const slow = snap.health.find((r) => r.endpoint === victim.clientUrl);
      assert.equal(slow?.health, false);
      assert.equal(slow?.problem?.code, 'timeout');
      assert.equal(snap.health.filter((r) => r.health).length, 2);
    } finally {
      process.kill(victim.pid, 'SIGCONT');
    }
  });

  it('wrong CA, wrong client certificate and a missing file each get their own message', async () => {
    const other = await tempDir();
    await generateCertificateSet(cluster(other, [host('x', '127.0.0.1')]));
    const ep = [etcd.endpoints[0]!];
    const wrongCa = await clusterSnapshot(ep, {
      tls: { ...admin(dir), caFile: join(other, 'ca.pem') },
      timeoutMs: 2000,
    });
    assert.equal(wrongCa.health[0]?.problem?.code, 'unknown-authority');
    assert.match(
      wrongCa.health[0]?.problem?.summary ?? '',
      /TLS unknown authority: .* is not signed by the CA in .*ca\.pem/,
    );

    const wrongCert = await clusterSnapshot(ep, {
      tls: { ...admin(other), caFile: join(dir, 'ca.pem') },
      timeoutMs: 2000,
    });
    assert.equal(
      wrongCert.health[0]?.problem?.code,
      'client-cert-rejected',
      JSON.stringify(wrongCert.health[0]?.problem),
    );
    assert.match(
      wrongCert.health[0]?.problem?.summary ?? '',
      /client certificate rejected by .*admin\.pem/,
    );

    const missing = await cli([
      'health',
      ...target([ep[0]!], { ...admin(dir), certFile: join(dir, 'nope.pem') }),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no such file.*nope\.pem|nope\.pem.*no such file/i);
  });
});

describe('a dead cluster', () => {
  it('every member stopped: all unhealthy within the timeout, no leader, and the member list says why', async () => {
    const dir = await tempDir();
    const { etcd } = await etcdWithOurCerts(dir, 3, { track });
    for (const m of etcd.members) await etcd.stopMember(m.name);
    const t0 = performance.now();
    const snap = await clusterSnapshot(etcd.endpoints, { tls: admin(dir), timeoutMs: 2000 });
    assert.ok(performance.now() - t0 < 4000);
    assert.equal(snap.healthy, false);
    assert.deepEqual(
      snap.health.map((h) => h.problem?.code),
      ['refused', 'refused', 'refused'],
    );
    assert.equal(snap.summary, '0/3 healthy, no leader');
    assert.equal(snap.members.length, 0);
    assert.equal(snap.membersProblem?.code, 'refused');
  });
});

describe('alarms', () => {
  it('a NOSPACE alarm (small --quota-backend-bytes) makes the member unhealthy with the alarm named', async () => {
    const dir = await tempDir();
    const { etcd } = await etcdWithOurCerts(dir, 1, {
      track,
      extra: { extraArgs: ['--quota-backend-bytes=1048576'] },
    });
    const tls = admin(dir);
    const client = await createEndpointClient(etcd.endpoints[0]!, { tls, timeoutMs: 5000 });
    try {
      const value = Buffer.alloc(200 * 1024, 7);
      let full = false;
      for (let i = 0; i < 40 && !full; i++) {
        await client
          .put(`/fill/${i}`)
          .value(value)
          .then(
            () => undefined,
            (err: unknown) => {
              assert.match(String(err), /database space exceeded/);
              full = true;
            },
          );
      }
      assert.ok(full, 'the quota was reached');
    } finally {
      client.close();
    }
    const snap = await clusterSnapshot(etcd.endpoints, { tls });
    assert.equal(snap.healthy, false);
    assert.deepEqual(snap.health[0]?.alarms, ['NOSPACE']);
    assert.equal(snap.health[0]?.problem?.summary, 'Active Alarm(s): NOSPACE');
    assert.match(snap.health[0]?.problem?.hint ?? '', /defragment/);
  });
});
