/**
 * The NOSPACE rescue that must raise the quota, on three real systemd hosts (Debian in
 * systemd-nspawn, etcd provisioned over SSH with etcd.quotaBackendBytes: 32MiB): distinct keys
 * fill the database until etcd raises NOSPACE, so compaction and defragmentation cannot make
 * room. `maintain --rescue --quota-share 0.6 --raise-quota 64MiB --yes` compacts, defragments member by member,
 * keeps the alarm (no headroom), sets etcd.quotaBackendBytes: 64MiB in the inventory (the other
 * lines kept), restarts the members one at a time on it (provision etcd's rolling change, which
 * an armed NOSPACE must not turn into "every member at once"), then disarms and writes.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectionFor } from '../../src/core/etcd/connection';
import { createEndpointClient } from '../../src/core/etcd/client';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { makeTempDir, removeTempDir, waitUntil } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { main } from '../../src/cli/main';
import { captureIO } from '../fixtures/cli';
import { writeFile } from 'node:fs/promises';

const ADDR = ['127.0.1.64', '127.0.1.65', '127.0.1.66'];
const NAMES = ['edge-1', 'edge-2', 'edge-3'];
const MiB = 1024 * 1024;

describe('the NOSPACE rescue raises the quota on real hosts', () => {
  let dir = '';
  let hosts: EdgeHost[] = [];

  before(async () => {
    dir = await makeTempDir('k3s-etcd-maintain-quota-');
    const k = makeKey(dir, 'id_lab');
    hosts = await startEdgeHosts({
      hosts: NAMES.map((name, i) => ({ name, address: ADDR[i] as string })),
      authorizedKeys: [k.publicLine],
    });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    await writeFile(
      join(dir, 'k3s-etcd.yaml'),
      labInventory({
        cluster: 'full',
        hosts: NAMES.map((name, i) => ({ name, address: ADDR[i] as string })),
        identityFile: k.file,
        comments: true,
      }).replace('uploadPath: etcd-bin }', 'uploadPath: etcd-bin, quotaBackendBytes: 32MiB }'),
    );
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('fills with live keys, then rescue --raise-quota rolls the new quota and disarms', async () => {
    const file = join(dir, 'k3s-etcd.yaml');
    const cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    const p = await provisionEtcd(cluster, { dryRun: false, ssh: labSsh(dir) });
    assert.equal(p.healthy, true, p.healthSummary);
    const conn = await connectionFor(cluster);
    const k = await createEndpointClient(conn.endpoints[0]!, { tls: conn.tls, timeoutMs: 20_000 });
    try {
      // Distinct 1 MiB objects: all of it stays in use after compaction.
      const big = 's'.repeat(MiB);
      let n = 0;
      await waitUntil(
        async () => {
          try {
            await k.put(`/registry/secrets/default/s${n++}`).value(big);
            return false;
          } catch (err) {
            return /database space exceeded/.test(String(err));
          }
        },
        120_000,
        'NOSPACE raised by live data',
      );
      const kept = n - 1;

      const run = captureIO(dir);
      // Headroom: under 60% of the quota (bbolt's pages leave a file of 1 MiB values near 80%
      // in use when etcd raises NOSPACE).
      const code = await main(
        ['maintain', '--rescue', '--quota-share', '0.6', '--raise-quota', '64MiB', '--yes'],
        run.io,
      );
      const text = run.out.join('\n');
      assert.equal(code, 0, text);
      assert.match(text, /the alarm stays armed: .* holds [\d.]+ MB of its 34 MB quota/);
      assert.match(text, /etcd\.quotaBackendBytes: 32MiB → 64MiB in /);
      assert.match(text, /etcd restarts on 3 member\(s\), one at a time/);
      assert.match(text, /etcd\.quotaBackendBytes raised to 64MiB: every member runs with it/);
      assert.match(text, /disarmed NOSPACE on edge-\d/);
      assert.match(text, /writes work again/);

      // What a user checks: the inventory (comments kept), each member's quota, no alarm, writes.
      const yaml = await readFile(file, 'utf8');
      assert.match(yaml, /quotaBackendBytes: 64MiB/);
      assert.match(yaml, /^# the full$/m);
      const health = captureIO(dir);
      assert.equal(await main(['status', '--json'], health.io), 0, health.out.join('\n'));
      const rows = JSON.parse(health.out.join('\n')) as Array<{ quotaBackendBytes?: number }>;
      assert.deepEqual(
        rows.map((r) => r.quotaBackendBytes),
        [64 * MiB, 64 * MiB, 64 * MiB],
      );
      const alarms = await k.maintenance.alarm({ action: 'Get', memberID: '0', alarm: 'None' });
      assert.deepEqual(alarms.alarms, []);
      await k.put('/registry/secrets/default/after').value('ok');
      assert.equal(await k.getAll().prefix('/registry/secrets/').count(), kept + 1);
    } finally {
      k.close();
    }
  });
});
