/**
 * `member replace` on real systemd hosts (Debian in systemd-nspawn, etcd over SSH, a K3s server
 * stand-in on edge-1): a member whose database file was truncated is replaced on its own host
 * (a new member ID, its data moved aside, every key back); a stopped member is replaced on a
 * spare host of the inventory (the etcd role moves in k3s-etcd.yaml, the K3s server's
 * datastore-endpoint follows); before that, the spare host holding foreign etcd data is refused
 * by the dry run and by the run alike, with nothing removed and no certificate issued for it.
 * A client writes to every endpoint throughout each replacement
 * and none of its writes fails: the replacement joins as a learner and never costs the quorum.
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { connectionFor } from '../../src/core/etcd/connection';
import { createEndpointClient } from '../../src/core/etcd/client';
import { toMember } from '../../src/core/etcd/members';
import { K3S_CONFIG } from '../../src/core/k3s/server';
import { installK3s } from '../../src/core/k3s/ops';
import { fileTokenStore } from '../../src/core/k3s/token';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import type { Cluster } from '../../src/core/inventory/types';
import { main } from '../../src/cli/main';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import { startWriter } from '../../scripts/harness/writer';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';
import { captureIO } from '../fixtures/cli';

const ADDR = ['127.0.1.121', '127.0.1.122', '127.0.1.123', '127.0.1.124'];
const KEYS = 50;

describe('member replace on real systemd hosts', () => {
  let dir = '';
  let file = '';
  let hosts: EdgeHost[] = [];
  let cluster: Cluster;

  before(async () => {
    dir = await makeTempDir('k3s-etcd-replace-');
    const key = makeKey(dir, 'id_lab');
    const specs = ADDR.map((address, i) => ({
      name: `edge-${i + 1}`,
      address,
      roles: i === 0 ? ['etcd', 'k3s-server'] : i < 3 ? ['etcd'] : ['k3s-agent'],
    }));
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    await writeK3sStandIn(join(dir, 'k3s-offline'));
    file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({
        cluster: 'lab',
        hosts: specs,
        identityFile: 'id_lab',
        comments: true,
        clusterLines: [`k3s: { version: ${STANDIN_VERSION}, install: offline }`],
      }),
    );
    cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    const ssh = labSsh(dir);
    const r = await provisionEtcd(cluster, { dryRun: false, ssh });
    assert.equal(r.healthy, true, r.healthSummary);
    const k = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens: fileTokenStore(file, join(dir, 'tokens')),
      workspaceDir: dir,
    });
    assert.deepEqual(
      k.runs.map((x) => x.status),
      ['changed'],
    );
    const conn = await connectionFor(cluster);
    const c = await createEndpointClient(conn.endpoints[0]!, { tls: conn.tls, timeoutMs: 10_000 });
    try {
      for (let i = 0; i < KEYS; i++)
        await c.put(`/registry/configmaps/default/k${i}`).value(`v${i}`);
    } finally {
      c.close();
    }
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  /** The member list as etcd says it, from the first member that answers. */
  async function memberList(c: Cluster) {
    const conn = await connectionFor(c);
    for (const ep of conn.endpoints) {
      const k = await createEndpointClient(ep, { tls: conn.tls, timeoutMs: 5000 });
      try {
        return (await k.cluster.memberList({})).members.map(toMember);
      } catch {
        // the next one
      } finally {
        k.close();
      }
    }
    throw new Error('no member answered');
  }

  /** Keys under /registry/ as `endpoint` itself holds them (a member-local read). */
  async function keysOn(c: Cluster, endpoint: string): Promise<number> {
    const conn = await connectionFor(c);
    const k = await createEndpointClient(endpoint, { tls: conn.tls, timeoutMs: 10_000 });
    try {
      return await k.getAll().prefix('/registry/configmaps/default/').serializable(true).count();
    } finally {
      k.close();
    }
  }

  /** Runs `member replace` with a client writing to every endpoint the whole time. */
  async function replace(args: string[]) {
    const conn = await connectionFor(cluster);
    const writer = await startWriter({ endpoints: conn.endpoints, tls: conn.tls });
    const run = captureIO(dir);
    let code: number;
    try {
      code = await main(['member', 'replace', ...args, '--yes'], run.io);
    } finally {
      await writer.stop();
    }
    return { code, text: run.out.join('\n'), stats: writer.stats };
  }

  it('a member with a truncated database is replaced on its own host: new ID, every key, no failed write', async () => {
    const before = await memberList(cluster);
    const oldId = before.find((m) => m.name === 'edge-2')?.id;
    assert.ok(oldId);
    const data = cluster.etcd.dataDir;
    const broken = await hosts[1]!.exec(
      `systemctl stop etcd && truncate -s 4096 ${data}/member/snap/db && ls -l ${data}/member/snap/db`,
    );
    assert.equal(broken.code, 0, broken.stderr);

    const dry = captureIO(dir);
    assert.equal(await main(['member', 'replace', 'edge-2', '--dry-run'], dry.io), 0);
    assert.match(dry.out.join('\n'), new RegExp(`member remove ${oldId} \\(edge-2, not healthy`));
    assert.match(dry.out.join('\n'), /member add --learner https:\/\/127\.0\.1\.122:2380/);
    // The dry run checks the replacement host as the run does first.
    assert.match(
      dry.out.join('\n'),
      /edge-2 can be provisioned \(a dry run of its provisioning\):\nHOST +STEP +STATUS +WHAT\n(?:.*\n)*?edge-2 +\d+ +ok +address 127\.0\.1\.122 is on this host/,
    );

    const r = await replace(['edge-2']);
    assert.equal(r.code, 0, r.text);
    assert.equal(r.stats.failed, 0, `writes failed: ${r.stats.failures.join('; ')}`);
    assert.ok(r.stats.ok > 0);
    assert.match(r.text, /member add --learner: [0-9a-f]+ https:\/\/127\.0\.1\.122:2380/);
    assert.match(r.text, /member promote [0-9a-f]+: a voter now/);
    const after = await memberList(cluster);
    const now = after.find((m) => m.name === 'edge-2');
    assert.ok(now, JSON.stringify(after));
    assert.notEqual(now.id, oldId, 'a new member ID');
    assert.equal(now.isLearner, false);
    assert.equal(after.length, 3);
    assert.match(
      r.text,
      /joined as [0-9a-f]+, promoted to a voter; https:\/\/127\.0\.1\.121:2379 healthy; https:\/\/127\.0\.1\.122:2379 healthy; https:\/\/127\.0\.1\.123:2379 healthy/,
    );
    assert.equal(await keysOn(cluster, 'https://127.0.1.122:2379'), KEYS);
    const aside = await hosts[1]!.exec(`ls -d ${data}.removed-*`);
    assert.equal(aside.code, 0, 'the old data is kept aside, not deleted');
  });

  it('a stopped member is replaced on a spare host: inventory and the K3s datastore endpoint follow', async () => {
    const before = await memberList(cluster);
    const oldId = before.find((m) => m.name === 'edge-3')?.id;
    assert.ok(oldId);
    assert.equal((await hosts[2]!.exec('systemctl stop etcd')).code, 0);

    // edge-4 holds etcd data without this cluster's marker: its check refuses, in the dry run
    // and in the run, before anything is removed or any certificate issued for it.
    const data = cluster.etcd.dataDir;
    const certs = join(cluster.pki.dir, 'edge-4');
    const noCerts = async (when: string) =>
      assert.equal(
        await stat(certs).then(
          () => 'present',
          () => 'absent',
        ),
        'absent',
        `no certificate for edge-4 in the workspace ${when}`,
      );
    const planted = await hosts[3]!.exec(`mkdir -p ${data}/member`);
    assert.equal(planted.code, 0, planted.stderr);
    for (const args of [['--dry-run'], ['--yes']]) {
      const refused = captureIO(dir);
      assert.equal(
        await main(['member', 'replace', 'edge-3', '--host', 'edge-4', ...args], refused.io),
        1,
      );
      const text = refused.out.join('\n');
      assert.match(text, /already holds etcd data of another cluster/);
      assert.match(
        text,
        /Nothing was removed: edge-3 is still a member, and no certificate was issued for edge-4\./,
      );
      await noCerts(`after the refused ${args[0]}`);
    }
    assert.deepEqual(
      (await memberList(cluster)).map((m) => m.id).sort(),
      before.map((m) => m.id).sort(),
      'edge-3 still in the member list',
    );
    assert.match(await readFile(file, 'utf8'), /name: edge-3,/);
    assert.equal((await hosts[3]!.exec(`rm -rf ${data}`)).code, 0);
    const dry = captureIO(dir);
    assert.equal(
      await main(['member', 'replace', 'edge-3', '--host', 'edge-4', '--dry-run'], dry.io),
      0,
      dry.out.join('\n'),
    );
    assert.match(dry.out.join('\n'), /edge-4 can be provisioned \(a dry run of its provisioning\)/);
    await noCerts('after the dry run');

    const r = await replace(['edge-3', '--host', 'edge-4']);
    assert.equal(r.code, 0, r.text);
    assert.equal(r.stats.failed, 0, `writes failed: ${r.stats.failures.join('; ')}`);
    assert.match(r.text, /the etcd role moved from edge-3 to edge-4 \(edge-3's entry removed\)/);
    assert.ok((await stat(join(certs, 'server.pem'))).isFile(), 'edge-4 has its certificates now');

    // What a user checks: the inventory, the member list, the keys, K3s's config.yaml.
    const yaml = await readFile(file, 'utf8');
    assert.doesNotMatch(yaml, /name: edge-3,/);
    assert.match(yaml, /name: edge-4, .*roles: \[k3s-agent, etcd\]/);
    assert.match(yaml, /^# the lab$/m, 'comments kept');
    cluster = await loadCluster(file);
    const after = await memberList(cluster);
    assert.deepEqual(after.map((m) => m.name).sort(), ['edge-1', 'edge-2', 'edge-4']);
    assert.ok(after.every((m) => !m.isLearner));
    assert.equal(await keysOn(cluster, 'https://127.0.1.124:2379'), KEYS);
    const config = parse((await hosts[0]!.exec(`cat ${K3S_CONFIG}`)).stdout) as Record<
      string,
      unknown
    >;
    assert.equal(
      config['datastore-endpoint'],
      ['https://127.0.1.121:2379', 'https://127.0.1.122:2379', 'https://127.0.1.124:2379'].join(
        ',',
      ),
    );
    const status = captureIO(dir);
    assert.equal(await main(['health'], status.io), 0, status.out.join('\n'));
  });

  it('without a quorum, replace refuses and points to recover', async () => {
    await Promise.all([
      hosts[1]!.exec('systemctl stop etcd'),
      hosts[3]!.exec('systemctl stop etcd'),
    ]);
    try {
      const run = captureIO(dir);
      const code = await main(['member', 'replace', 'edge-2', '--yes'], run.io);
      assert.equal(code, 1);
      assert.match(run.out.join('\n'), /no other member serves a quorum read.*k3s-etcd recover/s);
    } finally {
      await Promise.all([
        hosts[1]!.exec('systemctl start etcd'),
        hosts[3]!.exec('systemctl start etcd'),
      ]);
    }
  });
});
