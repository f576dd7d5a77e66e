/**
 * Maintenance on a real 3-member mutual-TLS etcd with a 32 MiB --quota-backend-bytes: K3s-like
 * churn fills it until `etcdctl alarm list` shows NOSPACE and writes fail. With one member
 * stopped, `maintain` refuses and names it (nothing compacted, nothing defragmented). With every
 * member back, `maintain --rescue` says what fills the space, compacts, defragments the members
 * one at a time (followers first, the leader last, as its report shows), disarms, and a write
 * works again; every member's file is far smaller. A second `maintain --dry-run` then finds
 * nothing to do and says the compaction is recent.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { createEndpointClient } from '../../src/core/etcd/client';
import { captureIO } from '../fixtures/cli';
import { etcdctl } from '../../scripts/harness/etcd';
import { waitUntil } from '../../scripts/harness/processes';
import { admin, etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';
import type { MaintenanceReport } from '../../src/core/maintain/maintain';
import { compactRevisionByRange } from '../../src/core/maintain/survey';

const QUOTA = 32 * 1024 * 1024;

describe('maintain on a real etcd at its quota', () => {
  const { tempDir, track } = testScope('k3s-etcd-maintain-');

  it('refuses with a member down, then the rescue clears NOSPACE member by member', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    const { etcd } = await etcdWithOurCerts(pki, 3, {
      track,
      extra: { samePorts: true, extraArgs: [`--quota-backend-bytes=${QUOTA}`] },
    });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const tls = admin(pki);
    const k = await createEndpointClient(etcd.endpoints[0]!, { tls, timeoutMs: 10_000 });
    const sizes = async () =>
      Promise.all(
        etcd.endpoints.map(async (e) => {
          const c = await createEndpointClient(e, { tls, timeoutMs: 10_000 });
          try {
            return Number((await c.maintenance.status()).dbSize);
          } finally {
            c.close();
          }
        }),
      );
    try {
      for (let i = 0; i < 20; i++) await k.put(`/registry/pods/default/p${i}`).value(`pod ${i}`);
      // One object rewritten, 1 MiB each time, until etcd refuses.
      const big = 'k'.repeat(1024 * 1024);
      let n = 0;
      await waitUntil(
        async () => {
          try {
            for (let i = 0; i < 4; i++)
              await k.put('/registry/configmaps/kube-system/churn').value(`${n++}${big}`);
            return false;
          } catch (err) {
            return /database space exceeded/.test(String(err));
          }
        },
        60_000,
        'NOSPACE raised by the churn',
      );
      const listed = await etcdctl(etcd, ['alarm', 'list'], { tls });
      assert.match(listed.stdout, /alarm:NOSPACE/, listed.stdout + listed.stderr);
      await assert.rejects(
        async () => k.put('/registry/pods/default/x').value('x'),
        /database space exceeded/,
      );
      const before = await sizes();
      assert.ok(Math.max(...before) >= QUOTA * 0.9, `full: ${before.join(', ')}`);

      // One member stopped: maintain refuses and names it; nothing was touched.
      const stopped = etcd.members[2]!.name;
      await etcd.stopMember(stopped);
      let run = captureIO(dir);
      assert.equal(await main(['maintain', '--yes'], run.io), 1, run.out.join('\n'));
      const refusal = run.out.join('\n');
      assert.match(
        refusal,
        new RegExp(`maintenance is refused: voter ${stopped} \\(.+\\) is not healthy`),
      );
      assert.doesNotMatch(refusal, /^(compacted the history|m-\d: defragmenting)/m);
      await etcd.startMember(stopped);

      // The rescue.
      run = captureIO(dir);
      const code = await main(['maintain', '--rescue', '--yes'], run.io);
      const text = run.out.join('\n');
      assert.equal(code, 0, text);
      assert.match(
        text,
        /what fills the space: .* the most: configmaps [\d.]+ [kM]B in 1 key, .*the history of older revisions, which compaction frees/,
      );
      assert.match(text, /compacted the history at revision \d+/);
      assert.match(text, /disarmed NOSPACE on m-\d/);
      assert.match(text, /writes work again: put and deleted \/k3s-etcd\/maintain-probe\//);

      // What a user checks: no alarm, writes work, every file far smaller, the data kept.
      const after = await etcdctl(etcd, ['alarm', 'list'], { tls });
      assert.equal(after.stdout.trim(), '', after.stdout);
      await k.put('/registry/pods/default/after').value('ok');
      assert.equal(await k.getAll().prefix('/registry/pods/').count(), 21);
      assert.match((await k.get('/registry/configmaps/kube-system/churn').string()) ?? '', /^\d+k/);
      const now = await sizes();
      for (const [i, s] of now.entries())
        assert.ok(s < QUOTA / 4, `${etcd.endpoints[i]}: ${s} bytes after, ${before[i]} before`);

      // The report: followers first, the leader last, sizes before and after, time each.
      const reports = join(dir, '.k3s-etcd/reports');
      const names = await readdir(reports);
      const md = names.find((f) => /^rescue-edge-t-.*\.md$/.test(f));
      const js = names.find((f) => /^rescue-edge-t-.*\.json$/.test(f));
      assert.ok(md && js, names.join(', '));
      assert.equal((await stat(join(reports, md))).mode & 0o777, 0o600);
      const report = JSON.parse(await readFile(join(reports, js), 'utf8')) as MaintenanceReport;
      assert.equal(report.defrag.steps.length, 3);
      assert.deepEqual(
        report.defrag.steps.map((s) => s.role),
        ['follower', 'follower', 'leader'],
      );
      assert.equal(report.defrag.steps[2]!.member, report.defrag.leader);
      assert.ok(report.defrag.steps[2]!.leadershipTo, 'the leader handed over first');
      for (const s of report.defrag.steps) {
        assert.ok(s.ok && s.durationMs >= 0 && s.timeoutMs === 65_000, JSON.stringify(s));
        assert.ok(s.afterBytes! < s.beforeBytes!, JSON.stringify(s));
      }
      const mdText = await readFile(join(reports, md), 'utf8');
      const [f1, f2, l] = report.defrag.steps.map((s) => s.member);
      assert.match(
        mdText,
        new RegExp(
          `1\\. ${f1} \\(follower\\): .*\\n2\\. ${f2} \\(follower\\): .*\\n3\\. ${l} \\(leader, the leadership handed to m-\\d first\\)`,
        ),
      );

      // The compaction's revision is read back without /metrics too (the oldest readable one).
      const current = Number((await k.maintenance.status()).header.revision);
      assert.equal(await compactRevisionByRange(k, current), report.compaction.revision);

      // Nothing left to do; the compaction just made is recent. K3s's API server keeps its
      // compactor's key: the dry run names it as the reason compaction is left to it.
      await k.put('compact_rev_key').value(String(report.compaction.revision));
      run = captureIO(dir);
      assert.equal(await main(['maintain', '--dry-run'], run.io), 0, run.out.join('\n'));
      const dry = run.out.join('\n');
      assert.match(
        dry,
        new RegExp(
          `compaction skipped: last compacted at revision ${report.compaction.revision}, \\d+ revisions ago, which is recent \\(10000 or fewer\\); K3s's API server compacts the history every 5 minutes \\(compact_rev_key\\)`,
        ),
      );
      assert.match(
        dry,
        /m-\d \((leader|follower)\): [\d.]+ [kM]B \([\d.]+ [kM]B in use\) of 34 MB quota\n(.*\n)*( {4}| {2}every member: )leave: /,
      );
      assert.match(dry, /Nothing to do\./);
    } finally {
      k.close();
    }
  });
});
