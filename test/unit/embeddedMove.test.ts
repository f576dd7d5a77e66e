/**
 * The move from K3s's embedded etcd to the external one, planned: its refusals (source not
 * embedded, a K3s server left out of the target, an unhealthy target, a target holding K3s's
 * keys, no token or a stored token that is not the servers'), the plan's words for one server
 * and for three (who stops when: every server before anything is read, the copied database,
 * the revisions, the way back), the restore's --bump-revision only where the tool has it and
 * --skip-hash-check for a copied database, and that database's record.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  BUMP_REVISION,
  checkMoveShape,
  checkTarget,
  chooseToken,
  movePlanText,
  planMove,
  type SourceMember,
  type TargetFacts,
} from '../../src/core/embeddedMove/plan';
import { keyValueFields, openDbFile } from '../../src/core/etcd/dbFile';
import {
  restoreBumps,
  restoreCommands,
  snapshotInfo,
  snapshotRecordProblem,
} from '../../src/core/etcd/snapshotFile';
import type { Cluster } from '../../src/core/inventory/types';
import { checkK3sFacts } from '../../src/core/k3s/server';
import { cluster, host } from '../fixtures/inventory';

const servers = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a, i) =>
  host(`k-${i + 1}`, a, { roles: ['etcd', 'k3s-server'] }),
);
const source: Cluster = {
  ...cluster('/tmp/ws', servers),
  name: 'edge-k3s',
  datastore: 'k3s-embedded-etcd',
};
const targetOf = (version: string, hosts = servers): Cluster => {
  const c = cluster('/tmp/ws', [...hosts.map((h) => ({ ...h, roles: [...h.roles] }))]);
  return {
    ...c,
    name: 'edge-etcd',
    etcd: { ...c.etcd, version, clientPort: 2389, peerPort: 2390 },
  };
};
const facts = (over: Partial<TargetFacts> = {}): TargetFacts => ({
  endpoints: servers.map((h) => `https://${h.address}:2389`),
  hosts: servers.map((h) => h.name),
  healthy: true,
  summary: '3/3 healthy, leader k-1',
  version: '3.4.23',
  registryKeys: 0,
  bootstrapKeys: 0,
  ...over,
});
const member = (h: (typeof servers)[number], leader: boolean): SourceMember => ({
  host: h.name,
  address: h.address,
  member: `${h.name}-0a1b2c3d`,
  id: `id${h.name}`,
  version: '3.5.16',
  revision: '81234',
  dbSize: 12_000_000,
  leader,
});

describe('embedded → external: refusals', () => {
  it('the source must be K3s embedded etcd, and every K3s server a target server at its address', () => {
    assert.throws(
      () => checkMoveShape({ ...source, datastore: 'external-etcd' }, targetOf('3.5.16')),
      /Cluster edge-k3s is not K3s's embedded etcd \(its datastore is external-etcd\)/,
    );
    const moved = targetOf('3.5.16', [
      servers[0]!,
      { ...servers[1]!, address: '10.0.0.9' },
      servers[2]!,
    ]);
    assert.throws(
      () => checkMoveShape(source, moved),
      /K3s server k-2 \(10\.0\.0\.2\) of edge-k3s is not a k3s-server of edge-etcd at the same address: it would stay on the old embedded etcd .* split brain/,
    );
    const noServer = targetOf('3.5.16', [
      servers[0]!,
      { ...servers[1]!, roles: ['etcd'] },
      servers[2]!,
    ]);
    assert.throws(() => checkMoveShape(source, noServer), /K3s server k-2 /);
    assert.doesNotThrow(() => checkMoveShape(source, targetOf('3.5.16')));
  });

  it('an unhealthy target, or one holding /registry/ or /bootstrap/ keys, is refused with the count', () => {
    assert.throws(
      () => checkTarget('edge-etcd', facts({ healthy: false, summary: '2/3 healthy, leader k-1' })),
      /edge-etcd is not healthy \(2\/3 healthy, leader k-1\)/,
    );
    assert.throws(
      () => checkTarget('edge-etcd', facts({ registryKeys: 412, bootstrapKeys: 1 })),
      /edge-etcd already holds K3s data \(412 \/registry\/ key\(s\), 1 \/bootstrap\/ key\(s\)\): a live datastore is never overwritten/,
    );
    assert.doesNotThrow(() => checkTarget('edge-etcd', facts()));
  });

  it("the token: the servers' own; a stored one that differs is refused; none at all is refused", () => {
    assert.deepEqual(
      chooseToken('edge-etcd', { server: 'abc', storedTarget: 'K10x::server:abc' }),
      {
        token: 'abc',
        source: 'from-server',
      },
    );
    assert.throws(
      () => chooseToken('edge-etcd', { server: 'abc', storedTarget: 'other' }),
      /The K3s token stored for edge-etcd is not the one the K3s servers hold/,
    );
    assert.deepEqual(chooseToken('edge-etcd', { storedSource: 's' }), {
      token: 's',
      source: 'stored',
    });
    assert.throws(() => chooseToken('edge-etcd', {}), /No K3s token found/);
  });
});

describe('embedded → external: the plan in words', () => {
  it('three servers: followers stop first, the leader is frozen by the lost quorum, leader re-pointed first', () => {
    const p = planMove({
      source,
      target: targetOf('3.5.16'),
      members: [member(servers[0]!, false), member(servers[1]!, true), member(servers[2]!, false)],
      targetFacts: facts({ version: '3.5.16' }),
      token: 'from-server',
      stamp: '20261207T000000Z',
    });
    assert.deepEqual(p.followers, ['k-1', 'k-3']);
    assert.deepEqual(p.servers, ['k-2', 'k-1', 'k-3']);
    assert.equal(p.bumpRevision, BUMP_REVISION);
    const text = movePlanText(p).join('\n');
    assert.match(
      text,
      /1\. stop K3s on k-1, k-3 \(followers first, each stop checked\): with 3 members, quorum is lost once 2 are down, so nothing can commit any more and k-2's state/,
    );
    assert.match(
      text,
      /2\. stop K3s on k-2 \(its etcd stops with it\): from here no K3s server runs, nothing can write/,
    );
    assert.match(
      text,
      /3\. snapshot: k-2's etcd database \/var\/lib\/rancher\/k3s\/server\/db\/etcd\/member\/snap\/db .*copied as it lies with K3s stopped.*read from the copy/,
    );
    assert.match(text, /--skip-hash-check \(a copied database has no snapshot hash/);
    assert.match(text, /etcdutl with --bump-revision 1000000000 --mark-compacted/);
    assert.match(
      text,
      /otherwise the move stops here, K3s stays stopped on its old data \(untouched\), and sudo systemctl start k3s on each server goes back/,
    );
    assert.match(
      text,
      /re-point the K3s servers one at a time, k-2 first .*etcd\.before-external-20261207T000000Z .*datastore-endpoint https:\/\/10\.0\.0\.1:2389,/,
    );
    assert.match(text, /Until step 6 nothing of K3s's is changed/);
    assert.match(text, /docs\/datastore-moves\.md/);
  });

  it('one server: K3s stops before its data is read, so every write is carried; 3.4 keeps revisions', () => {
    const p = planMove({
      source: { ...source, hosts: [servers[0]!] },
      target: targetOf('3.4.23'),
      members: [member(servers[0]!, true)],
      targetFacts: facts(),
      token: 'stored',
      stamp: '20261207T000000Z',
    });
    assert.deepEqual(p.followers, []);
    assert.equal(p.bumpRevision, undefined);
    const text = movePlanText(p).join('\n');
    assert.match(
      text,
      /1\. k-1 is the only K3s server: nothing to stop before it .*stops with it in step 2, before anything is read/,
    );
    assert.match(text, /2\. stop K3s on k-1 .*the state K3s last wrote/);
    assert.doesNotMatch(text, /not carried/);
    assert.match(
      text,
      /etcd 3\.4\.23's etcdctl has no --bump-revision: the revisions stay as the snapshot holds them/,
    );
    assert.match(text, /The K3s token: the one stored for edge-etcd/);
  });

  it('no leader in the source is refused', () => {
    assert.throws(
      () =>
        planMove({
          source,
          target: targetOf('3.5.16'),
          members: servers.map((h) => member(h, false)),
          targetFacts: facts(),
          token: 'stored',
          stamp: 'x',
        }),
      /edge-k3s's etcd has no leader/,
    );
  });
});

describe('restore: --bump-revision only where the tool has it', () => {
  it('etcdutl from 3.5.10 and 3.6; never etcdctl or older etcdutl', () => {
    assert.equal(restoreBumps('v3.5.10', 'etcdutl'), true);
    assert.equal(restoreBumps('3.6.4', 'etcdutl'), true);
    assert.equal(restoreBumps('v3.5.9', 'etcdutl'), false);
    assert.equal(restoreBumps('v3.5.16', 'etcdctl'), false);
    assert.equal(restoreBumps('v3.4.23', 'etcdctl'), false);
    assert.equal(restoreBumps('garbage', 'etcdutl'), false);
  });

  it('the restore command carries the flags when asked, and not otherwise', () => {
    const t = targetOf('v3.6.4');
    const [withBump] = restoreCommands(t, '/s.db', { tool: 'etcdutl', bumpRevision: 1000 });
    assert.match(withBump!.command, / --bump-revision 1000 --mark-compacted$/);
    const [plain] = restoreCommands(t, '/s.db', { tool: 'etcdutl' });
    assert.doesNotMatch(plain!.command, /bump-revision|skip-hash-check/);
    const [copied] = restoreCommands(t, '/s.db', { tool: 'etcdctl', skipHashCheck: true });
    assert.match(
      copied!.command,
      /^ETCDCTL_API=3 etcdctl snapshot restore \/s\.db .* --skip-hash-check$/,
    );
  });

  it("a copied database's record says so; anything but true or false there is refused", () => {
    const record = {
      cluster: 'edge-k3s',
      file: '/elsewhere.db',
      sha256: 'a'.repeat(64),
      bytes: 4096,
      revision: '812',
      from: 'https://10.0.0.2:2379',
      createdAt: '2026-12-07T00:00:00.000Z',
    };
    assert.equal(snapshotRecordProblem({ ...record, dataDirCopy: true }, 'edge-k3s'), undefined);
    assert.equal(snapshotRecordProblem(record, 'edge-k3s'), undefined);
    assert.match(
      snapshotRecordProblem({ ...record, dataDirCopy: 'yes' }, 'edge-k3s') ?? '',
      /dataDirCopy is not true or false/,
    );
    assert.deepEqual(snapshotInfo({ ...record, dataDirCopy: true }, '/here.db'), {
      ...record,
      file: '/here.db',
      dataDirCopy: true,
    });
    assert.equal('dataDirCopy' in snapshotInfo(record, '/here.db'), false);
  });
});

describe("etcd's database file: a record's key and value", () => {
  it('reads fields 1 and 5 of a KeyValue, passing over the others, and refuses a cut record', () => {
    // key=1 "/k", create_revision=2 300, mod_revision=3 301, version=4 1, value=5 "v!", lease=6 7
    const kv = Buffer.from([
      0x0a, 2, 0x2f, 0x6b, 0x10, 0xac, 0x02, 0x18, 0xad, 0x02, 0x20, 1, 0x2a, 2, 0x76, 0x21, 0x30,
      7,
    ]);
    const framed = Buffer.concat([Buffer.from('xx'), kv, Buffer.from('yy')]);
    const f = keyValueFields(framed, 2, 2 + kv.length);
    assert.equal(framed.toString('latin1', ...f.key), '/k');
    assert.equal(framed.toString('latin1', ...f.value), 'v!');
    // A tombstone's record holds only the key: the value is empty.
    const tomb = keyValueFields(Buffer.from([0x0a, 1, 0x61]), 0, 3);
    assert.deepEqual(tomb.value, [0, 0]);
    assert.throws(() => keyValueFields(kv, 0, kv.length - 1));
  });

  it('a file that is not a bbolt database is refused, not guessed at', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-dbfile-'));
    try {
      const f = join(dir, 'db');
      await writeFile(f, Buffer.alloc(8192, 7));
      await assert.rejects(
        openDbFile(f),
        /is not a readable etcd database: it is not a bbolt file/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("K3s install: the move's allowance, and only with it", () => {
  const facts = {
    installed: true,
    active: false,
    clusterInit: true,
    embeddedEtcd: true,
    token: 'K10f00d::server:abc',
    hostname: 'k-1',
    curl: true,
    sqlite3: false,
  };
  it('cluster-init and embedded data are refused by a plain install, allowed for the move', () => {
    assert.throws(
      () => checkK3sFacts(servers[0]!, facts, { token: 'abc', backedUp: false }),
      /--cluster-init/,
    );
    assert.throws(
      () =>
        checkK3sFacts(
          servers[0]!,
          { ...facts, clusterInit: false },
          { token: 'abc', backedUp: false },
        ),
      /holds K3s's embedded etcd data/,
    );
    assert.doesNotThrow(() =>
      checkK3sFacts(servers[0]!, facts, { token: 'abc', backedUp: false, embeddedMove: true }),
    );
    assert.throws(
      () =>
        checkK3sFacts(servers[0]!, facts, { token: 'other', backedUp: false, embeddedMove: true }),
      /another token/,
    );
  });
});
