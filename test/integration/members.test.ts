/**
 * The core's listMembers against a REAL 3-member etcd, compared with what the real etcdctl
 * reports. etcdctl's JSON prints member IDs as decimal uint64 numbers, which JSON.parse would
 * round, so the IDs are cut out of the raw text and converted with BigInt.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { listMembers } from '../../src/core/etcd/members';
import { etcdctl, startEtcdCluster } from '../../scripts/harness/etcd';
import type { EtcdCluster } from '../../scripts/harness/etcd';

let cluster: EtcdCluster | undefined;
before(async () => {
  cluster = await startEtcdCluster({ members: 3 });
});
after(async () => {
  await cluster?.stop();
});

function started(): EtcdCluster {
  assert.ok(cluster, 'cluster did not start');
  return cluster;
}

/** name -> hex ID, from `etcdctl member list -w json`, without losing uint64 precision. */
async function etcdctlMemberIds(c: EtcdCluster): Promise<Map<string, string>> {
  const r = await etcdctl(c, ['member', 'list', '-w', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const parsed = JSON.parse(r.stdout) as { members: { name: string }[] };
  const ids = [...r.stdout.matchAll(/"ID":(\d+)/g)].map((m) => BigInt(m[1] ?? '').toString(16));
  assert.equal(ids.length, parsed.members.length, `could not cut IDs out of: ${r.stdout}`);
  return new Map(parsed.members.map((m, i) => [m.name, ids[i] ?? '']));
}

test('listMembers reads the real member list, matching etcdctl', async () => {
  const c = started();
  const members = await listMembers(c.endpoints, { timeoutMs: 5000 });
  assert.equal(members.length, 3);
  assert.deepEqual(new Set(members.map((m) => m.name)), new Set(c.members.map((m) => m.name)));
  const expectedIds = await etcdctlMemberIds(c);
  for (const h of c.members) {
    const m = members.find((x) => x.name === h.name);
    assert.ok(m, `member ${h.name} missing`);
    assert.deepEqual(m.peerUrls, [h.peerUrl]);
    assert.deepEqual(m.clientUrls, [h.clientUrl]);
    assert.equal(m.isLearner, false);
    assert.match(m.id, /^[0-9a-f]+$/);
    assert.equal(m.id, expectedIds.get(h.name), `ID of ${h.name}`);
  }
});

test('listMembers still answers with one member stopped', async () => {
  const c = started();
  const dead = c.members[0];
  assert.ok(dead);
  await c.stopMember(dead.name);
  // The dead endpoint comes first: the core must fall through to a live one.
  const members = await listMembers(c.endpoints, { timeoutMs: 3000 });
  assert.equal(members.length, 3);
  assert.deepEqual(new Set(members.map((m) => m.name)), new Set(c.members.map((m) => m.name)));
});
