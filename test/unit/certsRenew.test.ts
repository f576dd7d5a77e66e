/**
 * `certs renew`, the parts that need no host: which leaves a renewal covers (every member, the
 * members named, the K3s client with --k3s) and its usage refusals; the CA that ends before the
 * new leaves would (refused before any key is asked for or written, in words that say to rotate
 * the CA); the new certificates issued in memory under the same CA; the plan's words (each
 * certificate with its CN and new expiry, the order with who restarts and why, the K3s servers,
 * a refusal) and its JSON (never a key); the workspace's dated folder of old files, and the old
 * files put back for leaves that did not reach their hosts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cluster, host } from '../fixtures/inventory';
import { K3sEtcdError } from '../../src/core/errors';
import { createCa } from '../../src/core/pki/issue';
import { loadPrivateKey } from '../../src/core/pki/keys';
import { parseCertificate } from '../../src/core/pki/inspect';
import { generateCertificateSet, knownFiles, leafValidity } from '../../src/core/pki/set';
import { caRefusal, issueLeaves, renewScope } from '../../src/core/renew/leaves';
import { planRenew, type RenewPlan } from '../../src/core/renew/run';
import { finishRenewed, writeRenewed } from '../../src/core/renew/workspace';
import { renewPlanJson, renewPlanLines } from '../../src/core/renew/words';
import type { Cluster } from '../../src/core/inventory/types';

const NOW = new Date('2026-03-01T10:00:00Z');
const DAY = 86_400_000;

const hosts = () => [
  host('h1', '127.0.0.1', { memberName: 'm-1' }),
  host('h2', '127.0.0.2', { memberName: 'm-2', roles: ['etcd', 'k3s-server'] }),
  host('h3', '127.0.0.3', { memberName: 'm-3' }),
];

describe('certs renew: scope and refusals', () => {
  const c = cluster('/w/pki', hosts());

  it('every member by default; the named members only (member or host names); the K3s client with --k3s', () => {
    const all = renewScope(c, [], false);
    assert.deepEqual(
      all.specs.map((s) => s.file.path),
      [
        'm-1/server.pem',
        'm-1/peer.pem',
        'm-2/server.pem',
        'm-2/peer.pem',
        'm-3/server.pem',
        'm-3/peer.pem',
      ],
    );
    assert.deepEqual(all.k3sServers, []);
    const some = renewScope(c, ['m-3', 'h1'], true);
    assert.deepEqual(
      some.specs.map((s) => s.file.path),
      ['m-1/server.pem', 'm-1/peer.pem', 'm-3/server.pem', 'm-3/peer.pem', 'client/k3s.pem'],
    );
    assert.deepEqual(
      some.k3sServers.map((h) => h.name),
      ['h2'],
    );
    assert.deepEqual(
      some.members.map((h) => h.name),
      ['h3', 'h1'],
    );
  });

  it('refuses an unknown member, --k3s without K3s servers or on K3s embedded etcd', () => {
    assert.throws(() => renewScope(c, ['m-9'], false), /No host "m-9" in cluster edge-t/);
    const noServers = cluster('/w/pki', [host('h1', '127.0.0.1')]);
    assert.throws(
      () => renewScope(noServers, [], true),
      /has no host with the role k3s-server in k3s-etcd\.yaml: leave out --k3s/,
    );
    const embedded: Cluster = { ...c, datastore: 'k3s-embedded-etcd' };
    assert.throws(
      () => renewScope(embedded, [], true),
      /is not K3s on this external etcd \(datastore: k3s-embedded-etcd\).*leave out --k3s/,
    );
  });

  it('a CA that ends before the new certificates would is refused, with what to do instead', async () => {
    const ca = await createCa('x', 'ecdsa-p256', {
      notBefore: new Date(NOW.getTime() - DAY),
      notAfter: new Date(NOW.getTime() + 100 * DAY),
    });
    const cert = parseCertificate(ca.certPem);
    const validity = leafValidity(cluster('/w', hosts(), { leafValidityDays: 365 }), NOW);
    assert.equal(
      caRefusal(cert, validity),
      'the CA itself expires on 2026-06-09, before the renewed certificates would (2027-03-01): renewed under it they would stop working with it. Rotate the CA instead (a new CA trusted beside the old one, then every certificate re-issued under it); nothing was changed',
    );
    assert.equal(
      caRefusal(cert, leafValidity(cluster('/w', hosts(), { leafValidityDays: 90 }), NOW)),
      undefined,
    );
  });
});

describe('certs renew: in memory, words, workspace', () => {
  let dir = '';
  let c: Cluster;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-renew-unit-'));
    c = cluster(join(dir, 'pki'), hosts());
    await generateCertificateSet(c);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('planRenew refuses a CA that ends too soon before any passphrase is asked or anything written', async () => {
    const short = { ...c, pki: { ...c.pki, leafValidityDays: 4000 } };
    const index = await readFile(join(c.pki.dir, 'index.json'), 'utf8');
    let asked = false;
    await assert.rejects(
      planRenew(short, {
        ssh: {} as never,
        pki: {
          askPassphrase: async () => {
            asked = true;
            return undefined;
          },
        },
      }),
      (err: unknown) =>
        err instanceof K3sEtcdError &&
        err.code === 'provision-refused' &&
        /^Not renewed: the CA itself expires on \d{4}-\d\d-\d\d, before the renewed certificates would .*Rotate the CA instead/.test(
          err.message,
        ),
    );
    assert.equal(asked, false);
    assert.equal(await readFile(join(c.pki.dir, 'index.json'), 'utf8'), index);
  });

  async function issued(scope = renewScope(c, ['m-1'], true)) {
    const key = await loadPrivateKey(await readFile(join(c.pki.dir, 'ca-key.pem'), 'utf8'), 'ca');
    const caPem = await readFile(join(c.pki.dir, 'ca.pem'), 'utf8');
    return issueLeaves(
      c,
      scope.specs,
      { certPem: caPem, signingKey: key.signingKey },
      'ecdsa-p256',
      leafValidity(c, new Date()),
    );
  }

  it('issues new leaves under the same CA, with the SANs of the inventory and the old one named', async () => {
    const leaves = await issued();
    const ca = parseCertificate(await readFile(join(c.pki.dir, 'ca.pem'), 'utf8'));
    assert.deepEqual(
      leaves.map((l) => [l.path, l.cn]),
      [
        ['m-1/server.pem', 'm-1'],
        ['m-1/peer.pem', 'm-1'],
        ['client/k3s.pem', 'k3s'],
      ],
    );
    for (const l of leaves) {
      const cert = parseCertificate(l.certPem);
      assert.ok(cert.verify(ca.publicKey), `${l.path} is signed by the CA`);
      assert.notEqual(l.old?.sha256, l.sha256, `${l.path} is new`);
    }
    assert.ok(
      parseCertificate(leaves[0]!.certPem).subjectAltName?.includes('IP Address:127.0.0.1'),
    );
  });

  it('the plan in words: certificates with CN and new expiry, who restarts in what order and why, K3s, a refusal; JSON without keys', async () => {
    const leaves = await issued();
    const plan: RenewPlan = {
      cluster: 'edge-t',
      leaves,
      caNotAfter: '2036-01-01T00:00:00.000Z',
      rolling: {
        mode: 'rolling',
        order: [
          {
            host: 'h1',
            member: 'm-1',
            unit: 'etcd',
            kind: 'restart',
            role: 'leader',
            why: [
              'server certificate /etc/etcd/pki/server.pem',
              'peer certificate /etc/etcd/pki/peer.pem',
            ],
          },
        ],
        filesOnly: [],
        refusal: 'm-3 is not healthy',
      },
      memberRuns: [],
      k3sRuns: [{ host: 'h2', status: 'would-change', steps: [], timings: {} }],
      aside: 'previous-20260301T100000Z',
      refusal: 'm-3 is not healthy',
      inputs: {} as never,
      members: [],
      k3sServers: [],
    };
    const year = leaves[0]!.notAfter.slice(0, 10);
    const lines = renewPlanLines(plan, new Date(leaves[0]!.old!.notAfter));
    assert.equal(lines[0], 'Re-issued under the same CA (it is valid until 2036-01-01):');
    assert.equal(
      lines[1],
      `  m-1/server.pem         CN m-1          until ${year}; replaces one until ${leaves[0]!.old!.notAfter.slice(0, 10)} (0 days left)`,
    );
    assert.match(lines[3]!, /^ {2}client\/k3s\.pem +CN k3s +until /);
    const text = lines.join('\n');
    assert.match(
      text,
      /etcd restarts on 1 member\(s\), one at a time .*\n {2}1\. m-1 on h1 \(leader\): restarts for server certificate \/etc\/etcd\/pki\/server\.pem, peer certificate \/etc\/etcd\/pki\/peer\.pem/,
    );
    assert.match(
      text,
      /why restart: etcd re-reads its certificate files on every new connection, so a renewed file is served even without a restart; each member is restarted on its new files anyway, one at a time, because that proves it starts and runs with them/,
    );
    assert.match(text, /then the K3s servers, one at a time .*: h2$/m);
    assert.match(
      text,
      /kept in previous-20260301T100000Z\/ in the pki folder until the rollout finished/,
    );
    assert.equal(lines.at(-1), 'refused: m-3 is not healthy');
    const json = JSON.stringify(renewPlanJson(plan));
    assert.doesNotMatch(json, /PRIVATE KEY/);
    assert.match(json, /"path":"m-1\/server\.pem"/);
  });

  it('the workspace: old files kept in a dated folder while the new ones are in place, and put back for leaves that did not reach their hosts', async () => {
    const leaves = await issued();
    const read = (rel: string) => readFile(join(c.pki.dir, rel), 'utf8');
    const old = await Promise.all(leaves.flatMap((l) => [read(l.path), read(l.keyPath)]));
    const folder = await writeRenewed(c.pki.dir, c.name, knownFiles(c), leaves, NOW);
    assert.equal(folder, join(c.pki.dir, 'previous-20260301T100000Z'));
    assert.equal(await readFile(join(folder, 'm-1/server-key.pem'), 'utf8'), old[1]);
    assert.equal(await read('m-1/server.pem'), leaves[0]!.certPem);
    assert.equal(await read('client/k3s-key.pem'), leaves[2]!.keyPem);
    const index = JSON.parse(await read('index.json')) as {
      entries: Array<{ path: string; sha256: string }>;
    };
    assert.equal(index.entries.find((e) => e.path === 'm-1/server.pem')?.sha256, leaves[0]!.sha256);

    // m-1 reached its host, K3s did not: its client files are the old ones again.
    const back = await finishRenewed(
      c.pki.dir,
      c.name,
      knownFiles(c),
      leaves,
      new Set(['m-1/server.pem', 'm-1/peer.pem']),
      folder,
    );
    assert.deepEqual(back, ['client/k3s.pem']);
    assert.equal(await read('m-1/server.pem'), leaves[0]!.certPem);
    assert.equal(await read('client/k3s.pem'), old[4]);
    assert.equal(await read('client/k3s-key.pem'), old[5]);
    assert.deepEqual(
      (await readdir(c.pki.dir)).filter((n) => n.startsWith('previous-')),
      [],
    );
    const after = JSON.parse(await read('index.json')) as {
      entries: Array<{ path: string; sha256: string }>;
    };
    assert.equal(
      after.entries.find((e) => e.path === 'client/k3s.pem')?.sha256,
      parseCertificate(old[4]!).fingerprint256,
    );
  });
});
