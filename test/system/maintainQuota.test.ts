/**
 * The NOSPACE rescue that must raise the quota, on three real systemd hosts (Debian in
 * systemd-nspawn, etcd provisioned over SSH with etcd.quotaBackendBytes: 32MiB): distinct keys
 * fill the database until etcd raises NOSPACE, so compaction and defragmentation cannot make
 * room. `maintain --rescue --quota-share 0.6 --raise-quota 64MiB --yes` compacts, defragments member by member,
 * keeps the alarm (no headroom), sets etcd.quotaBackendBytes: 64MiB in the inventory (the other
 * lines kept), restarts the members one at a time on it (provision etcd's rolling change, which
 * an armed NOSPACE must not turn into "every member at once"), then disarms and writes.
 *
 * On the same hosts, the maintenance timer (`maintain --install-timer`): installed on every host
 * for one moment half a minute ahead, it runs once on each; the leader's host defragments the
 * followers and then its own member while a client writes to every endpoint, the others leave a
 * "skipped" report, and `status` shows the last run that etcd holds.
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
import { startWriter } from '../../scripts/harness/writer';
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

  it('the maintenance timer runs once on every host; the leader host defragments, writes go on', async (t) => {
    const file = join(dir, 'k3s-etcd.yaml');
    const cluster = await loadCluster(file);
    const conn = await connectionFor(cluster);
    const k = await createEndpointClient(conn.endpoints[0]!, { tls: conn.tls, timeoutMs: 20_000 });
    const sizes = async () =>
      Promise.all(
        conn.endpoints.map(async (ep) => {
          const c = await createEndpointClient(ep, { tls: conn.tls, timeoutMs: 10_000 });
          try {
            return Number((await c.maintenance.status()).dbSize);
          } finally {
            c.close();
          }
        }),
      );
    let writer: Awaited<ReturnType<typeof startWriter>> | undefined;
    try {
      // Space to give back: the rescue's secrets and a few more 1 MiB values, deleted and
      // compacted away.
      const big = 't'.repeat(MiB);
      for (let i = 0; i < 8; i++) await k.put(`/registry/configmaps/default/t${i}`).value(big);
      await k.delete().prefix('/registry/configmaps/default/t');
      await k.delete().prefix('/registry/secrets/default/');
      const rev = (await k.get('/registry/').exec()).header.revision;
      await k.kv.compact({ revision: rev, physical: true });
      const before = await sizes();

      // One moment, 30 s ahead, in UTC: the timer fires once.
      const at = new Date(Date.now() + 30_000);
      const spec = `${at.toISOString().slice(0, 10)} ${at.toISOString().slice(11, 19)} UTC`;
      const flags = ['--on-calendar', spec, '--min-size', '4MiB', '--free-share', '0.3'];
      const install = captureIO(dir);
      const code = await main(['maintain', '--install-timer', ...flags, '--yes'], install.io);
      assert.equal(code, 0, install.out.join('\n'));
      assert.match(install.out.join('\n'), /edge-1: changed/);
      const again = captureIO(dir);
      assert.equal(
        await main(['maintain', '--install-timer', ...flags, '--dry-run'], again.io),
        0,
        again.out.join('\n'),
      );
      assert.doesNotMatch(again.out.join('\n'), /would-change/, 'a second install changes nothing');

      writer = await startWriter({ endpoints: conn.endpoints, tls: conn.tls });
      const reports = async () =>
        Promise.all(
          hosts.map(async (h) => {
            const r = await h.exec(
              'cat /var/lib/k3s-etcd/reports/maintain-*.json 2>/dev/null || true',
            );
            return r.stdout
              .split('\n')
              .filter((l) => l.trim())
              .map(
                (l) =>
                  JSON.parse(l) as {
                    host: string;
                    result: string;
                    summary: string;
                    defragmented: string[];
                    lines: string[];
                  },
              );
          }),
        );
      let found: Awaited<ReturnType<typeof reports>> = [];
      await waitUntil(
        async () => {
          found = await reports();
          return found.every((r) => r.length > 0);
        },
        120_000,
        'a report on every host',
      );
      const stats = await writer.stop();
      writer = undefined;
      assert.equal(stats.failed, 0, `writes failed: ${stats.failures.join('; ')}`);
      assert.ok(stats.ok > 0);

      // Once on each host: the leader's host acted, the others stood aside.
      assert.deepEqual(
        found.map((r) => r.length),
        [1, 1, 1],
      );
      const runs = found.map((r) => r[0]!);
      const acted = runs.filter((r) => r.result !== 'skipped');
      assert.equal(acted.length, 1, JSON.stringify(runs, null, 1));
      const run = acted[0]!;
      assert.equal(run.result, 'done', run.lines.join('\n'));
      assert.equal(run.defragmented.length, 3, run.lines.join('\n'));
      assert.equal(run.defragmented.at(-1), run.host, 'the leader (its own member) goes last');
      assert.match(run.lines.join('\n'), /compact/);
      t.diagnostic(
        `${run.host}: ${run.lines.join(' | ')}; writes ${stats.ok} ok, ${stats.failed} failed`,
      );
      const after = await sizes();
      for (let i = 0; i < 3; i++)
        assert.ok(after[i]! < before[i]!, `member ${i + 1}: ${before[i]} → ${after[i]} bytes`);

      // The last run as etcd holds it: status and the tree show it.
      const status = captureIO(dir);
      assert.equal(await main(['status'], status.io), 0, status.out.join('\n'));
      assert.match(
        status.out.join('\n'),
        new RegExp(
          `scheduled maintenance .* on ${run.host}: done: defragmented ${run.defragmented.join(', ')}`,
        ),
      );

      const remove = captureIO(dir);
      assert.equal(
        await main(['maintain', '--remove-timer', '--yes'], remove.io),
        0,
        remove.out.join('\n'),
      );
      for (const h of hosts) {
        const r = await h.exec(
          'test ! -e /etc/systemd/system/k3s-etcd-maintain.timer && test ! -e /usr/local/sbin/k3s-etcd-maintain && ls /var/lib/k3s-etcd/reports/',
        );
        assert.equal(r.code, 0, `${h.name}: ${r.stderr}`);
        assert.match(r.stdout, /maintain-.*\.json/, 'the reports stay');
      }
    } finally {
      await writer?.stop();
      k.close();
    }
  });
});
