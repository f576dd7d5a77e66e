/**
 * The performance check on an etcd that holds K3s data, on a real 3-member mutual-TLS etcd with a
 * 16 MiB --quota-backend-bytes: a load that could take the database past 60% of the quota is
 * refused before a single write (with the longest duration that fits); a cluster with keys under
 * /registry/ needs a confirmation (refused without --yes where nobody can answer); and when K3s-like
 * churn fills the database to NOSPACE during a run, the CLI cleans up, compacts, defragments every
 * member and disarms, and the cluster takes writes again with its K3s data intact.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { createEndpointClient } from '../../src/core/etcd/client';
import { perfPreflight } from '../../src/core/perf/guard';
import { captureIO } from '../fixtures/cli';
import { waitUntil } from '../../scripts/harness/processes';
import { admin, etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

const QUOTA = 16 * 1024 * 1024;
const PREFIX = '/etcdctl-check-perf/';

describe('check perf on a datastore that holds K3s data', () => {
  const { tempDir, track } = testScope('k3s-etcd-perfguard-');

  it('refuses a load that would near the quota, asks on K3s data, recovers from NOSPACE', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    const { etcd } = await etcdWithOurCerts(pki, 3, {
      track,
      extra: { samePorts: true, extraArgs: [`--quota-backend-bytes=${QUOTA}`] },
    });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const tls = admin(pki);
    const k = await createEndpointClient(etcd.endpoints[0]!, { tls, timeoutMs: 10_000 });
    try {
      for (let i = 0; i < 20; i++) await k.put(`/registry/pods/default/p${i}`).value(`pod ${i}`);
      const revision = async () => (await k.maintenance.status()).header.revision;
      const before = await revision();

      // m for 60 s: up to 60,000 writes, about 150 MB: far past 60% of 16 MiB. Nothing written.
      const pre = await perfPreflight({
        endpoints: etcd.endpoints,
        tls,
        load: 'm',
        durationSec: 60,
      });
      assert.equal(pre.quotaBytes, QUOTA, "the quota is read from etcd's own metrics");
      assert.equal(pre.quotaFrom, 'metrics');
      assert.equal(pre.registryKeys, 20);
      assert.match(pre.refusal ?? '', /passes 60% of the quota/);
      let run = captureIO(dir);
      assert.equal(await main(['perf', '--load', 'm', '--yes'], run.io), 1);
      assert.match(
        run.out.join('\n'),
        /Not running the check: Load m for 60 s writes up to 60,000 keys/,
      );
      assert.match(run.out.join('\n'), /Run it for at most \d+ s, choose a smaller load/);
      assert.equal(await revision(), before, 'not one write');

      // A small load fits, but the cluster holds K3s data: no terminal and no --yes, no run.
      run = captureIO(dir);
      assert.equal(await main(['perf', '--load', 's', '--duration', '2'], run.io), 2);
      assert.match(run.out.join('\n'), /holds K3s data \(20 keys under \/registry\/\)/);
      assert.match(run.out.join('\n'), /Refusing without --yes/);
      assert.equal(await revision(), before, 'not one write');

      // Confirmed; K3s-like churn (one object rewritten, 1 MiB each time) fills the database
      // while the check runs, until etcd raises NOSPACE.
      run = captureIO(dir);
      const perf = main(['perf', '--load', 's', '--duration', '15', '--yes'], run.io);
      await waitUntil(
        async () => run.out.some((l) => /^\[\s*1\/15 s\]/.test(l)),
        30_000,
        'the load running',
      );
      const big = 'k'.repeat(1024 * 1024);
      let filled = 0;
      await waitUntil(
        async () => {
          try {
            for (let i = 0; i < 4; i++)
              await k.put('/registry/configmaps/kube-system/churn').value(`${filled++}${big}`);
            return false;
          } catch (err) {
            return /database space exceeded/.test(String(err));
          }
        },
        30_000,
        'NOSPACE raised by the churn',
      );
      assert.equal(await perf, 1, run.out.join('\n'));
      const text = run.out.join('\n');
      assert.match(text, /NOSPACE: etcd raised NOSPACE during the check/);
      assert.match(text, /NOSPACE: compacted the history at revision \d+/);
      assert.equal((text.match(/NOSPACE: defragmented https:/g) ?? []).length, 3, text);
      assert.match(text, /NOSPACE: disarmed the alarm; the database is [\d.]+ [kM]B again/);

      // What a user checks: no alarm, writes work, K3s's data is there, the check's keys gone.
      const alarms = await k.maintenance.alarm({ action: 'Get', memberID: '0', alarm: 'None' });
      assert.deepEqual(alarms.alarms, []);
      await k.put('/registry/pods/default/after').value('ok');
      assert.equal(await k.getAll().prefix('/registry/pods/').count(), 21);
      assert.match((await k.get('/registry/configmaps/kube-system/churn').string()) ?? '', /^\d+k/);
      assert.equal(await k.getAll().prefix(PREFIX).count(), 0);
      for (const e of etcd.endpoints) {
        const m = await createEndpointClient(e, { tls, timeoutMs: 10_000 });
        try {
          assert.ok(Number((await m.maintenance.status()).dbSize) < QUOTA * 0.6, `${e} has room`);
        } finally {
          m.close();
        }
      }
    } finally {
      k.close();
    }
  });
});
