/**
 * Metrics on a real 3-member mutual-TLS etcd with a small --quota-backend-bytes: every member's
 * /metrics page read with our client certificate and parsed without a bad line; load from the
 * perf engine shows in the next scrape (proposals committed and the gRPC request rate rise); a
 * database filled near its quota is judged broken in words; stopping the leader shows as a leader
 * change on the others, stopping another leaves the last one without a leader. The CLI's
 * `metrics` says the same and exits 1. A member with etcd.metricsPort is scraped there.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { createEndpointClient } from '../../src/core/etcd/client';
import { runPerfCheck } from '../../src/core/perf/perf';
import { parsePrometheus } from '../../src/core/etcd/prometheus';
import { clusterMetrics, scrapeInto, type ScrapeRound } from '../../src/core/metrics/scrape';
import { metricsTargets, scrapeMetrics } from '../../src/core/etcd/scrape';
import type { ClusterMetrics } from '../../src/shared/metricsTypes';
import { MetricsWindow } from '../../src/core/metrics/window';
import { freePort } from '../../scripts/harness/net';
import { waitUntil } from '../../scripts/harness/processes';
import { captureIO } from '../fixtures/cli';
import { admin, etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

const QUOTA = 4 * 1024 * 1024;

describe('etcd metrics, read and judged', () => {
  const { tempDir, track } = testScope('k3s-etcd-metrics-');

  it('scrapes, parses, sees load, a full database and lost leaders', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    const { etcd, cluster } = await etcdWithOurCerts(pki, 3, {
      track,
      extra: { samePorts: true, extraArgs: [`--quota-backend-bytes=${QUOTA}`] },
    });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const tls = admin(pki);
    const targets = metricsTargets(cluster);
    assert.deepEqual(
      targets.map((t) => t.url),
      etcd.members.map((m) => `${m.clientUrl}/metrics`),
    );

    // Every line of a real page parses; HELP and TYPE are read.
    for (const t of targets) {
      const r = await scrapeMetrics(t.url, { tls });
      const page = parsePrometheus(r.text);
      assert.deepEqual(page.errors, [], `${t.member}: every line parses`);
      assert.ok(page.samples > 500, `${t.member}: ${page.samples} samples`);
      assert.equal(page.types.get('etcd_disk_wal_fsync_duration_seconds'), 'histogram');
      assert.match(page.help.get('etcd_server_has_leader') ?? '', /leader/i);
    }
    // Without our client certificate etcd refuses: the same mutual TLS as everything else.
    await assert.rejects(
      scrapeMetrics(targets[0]!.url, { tls: { ...tls, certFile: '', keyFile: '' } as never }),
    );

    const window = new MetricsWindow();
    const scrape = async (): Promise<ScrapeRound> => {
      const round = await scrapeInto(window, targets, { tls });
      assert.deepEqual([...round.errors], [], 'every member scraped');
      return round;
    };
    await scrape();
    const first = clusterMetrics('edge-t', targets, window, await scrape());
    assert.equal(first.members.filter((m) => m.summary?.isLeader).length, 1, 'one leader');
    for (const m of first.members) {
      assert.equal(m.summary?.version, '3.4.23');
      assert.equal(m.summary?.hasLeader, true);
      assert.equal(m.summary?.quotaBytes, QUOTA);
    }
    // Expiry is a metric too: each member's served certificate, the one in its server.pem.
    for (const m of first.members) {
      const file = new X509Certificate(await readFile(join(pki, m.member, 'server.pem')));
      const served = m.findings.find((f) => f.rule === 'served-cert');
      assert.equal(served?.level, 'ok', `${m.member}: ${served?.message}`);
      assert.match(served.message, new RegExp(new Date(file.validTo).toISOString().slice(0, 10)));
    }
    const leader = first.members.find((m) => m.summary?.isLeader)!.member;

    // Load: the interval holding the perf run shows more proposals and requests than the idle one.
    const perf = await runPerfCheck({
      endpoints: etcd.endpoints,
      tls,
      load: 's',
      durationSec: 2,
      prefix: '/metrics-test/',
    });
    assert.ok(perf.writes > 100, `${perf.writes} writes`);
    await scrape();
    const loaded = clusterMetrics('edge-t', targets, window, await scrape());
    for (const m of loaded.members) {
      const [idle, busy] = [m.series[0]!, m.series[1]!];
      assert.ok(
        (busy.proposalsPerSec ?? 0) > (idle.proposalsPerSec ?? 0) + 10,
        `${m.member}: proposals/s ${idle.proposalsPerSec} then ${busy.proposalsPerSec}`,
      );
      assert.ok((busy.walFsyncP99Ms ?? 0) > 0, `${m.member}: fsync latency over the load`);
      assert.equal(m.summary?.latencyBasis, 'window');
      assert.ok((m.summary?.walFsyncs ?? 0) > 100, `${m.member}: fsyncs in the window`);
    }
    const leaderSeries = loaded.members.find((m) => m.member === leader)!.series;
    assert.ok(
      (leaderSeries[1]!.grpcPerSec ?? 0) > (leaderSeries[0]!.grpcPerSec ?? 0),
      'the gRPC request rate rises with the load',
    );

    // Fill the database towards its small quota.
    const k = await createEndpointClient(etcd.endpoints[0]!, { tls, timeoutMs: 10_000 });
    let judged: ClusterMetrics = loaded;
    try {
      const value = 'x'.repeat(256 * 1024);
      await waitUntil(
        async () => {
          try {
            for (let i = 0; i < 2; i++) await k.put(`/fill/${Date.now()}-${i}`).value(value);
          } catch {
            // NOSPACE: over the quota already.
          }
          judged = clusterMetrics('edge-t', targets, window, await scrape());
          return judged.members.every(
            (m) => m.findings.find((f) => f.rule === 'db-quota')?.level === 'bad',
          );
        },
        60_000,
        'the database near its quota on every member',
      );
    } finally {
      k.close();
    }
    const quota = judged.members[0]!.findings.find((f) => f.rule === 'db-quota')!;
    assert.match(
      quota.message,
      /^database near its quota: .* of 4\.2 MB \(\d+%\).*raise etcd\.quotaBackendBytes in k3s-etcd\.yaml and apply it with provision/,
    );
    assert.equal(judged.level, 'bad');

    const { io, out } = captureIO(dir);
    assert.equal(await main(['metrics', '--window', '1'], io), 1, out.join('\n'));
    assert.match(out.join('\n'), /BAD +database near its quota/);
    const json = captureIO(dir);
    assert.equal(await main(['metrics', '--window', '0', '--json'], json.io), 1);
    const parsed = JSON.parse(json.out.join('\n')) as ClusterMetrics;
    assert.deepEqual(
      parsed.members.map((m) => m.member),
      etcd.members.map((m) => m.name),
    );

    // Stop the leader: the others elect another and count the change.
    await etcd.stopMember(leader);
    const others = targets.filter((t) => t.member !== leader);
    let after: ClusterMetrics | undefined;
    await waitUntil(
      async () => {
        const round = await scrapeInto(window, targets, { tls });
        after = clusterMetrics('edge-t', targets, window, round);
        return others.every((t) => {
          const m = after!.members.find((x) => x.member === t.member)!;
          return (m.summary?.leaderChanges ?? 0) >= 1 && m.summary?.hasLeader === true;
        });
      },
      30_000,
      'a leader change seen by the remaining members',
    );
    const gone = after!.members.find((m) => m.member === leader)!;
    assert.equal(gone.level, 'bad');
    assert.match(gone.error ?? '', /refused|no answer|ECONNREFUSED/i);
    const change = after!.members
      .find((m) => m.member === others[0]!.member)!
      .findings.find((f) => f.rule === 'leader-changes')!;
    assert.match(change.message, /^leader changed \d+ times? in the last/);

    // Stop another: the last member has no leader.
    await etcd.stopMember(others[0]!.member);
    await waitUntil(
      async () => {
        const round = await scrapeInto(window, targets, { tls });
        after = clusterMetrics('edge-t', targets, window, round);
        return (
          after.members.find((m) => m.member === others[1]!.member)!.summary?.hasLeader === false
        );
      },
      30_000,
      'the last member without a leader',
    );
    const last = after!.members.find((m) => m.member === others[1]!.member)!;
    assert.match(last.findings.find((f) => f.rule === 'has-leader')!.message, /^no leader/);
    assert.equal(after!.summary.startsWith('no leader seen'), true, after!.summary);
  });

  it('scrapes the --listen-metrics-urls listener when the inventory sets etcd.metricsPort', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    let metricsPort = 0;
    const { etcd, cluster } = await etcdWithOurCerts(pki, 1, {
      track,
      extra: {
        memberArgs: async (m) => {
          metricsPort = await freePort(m.address);
          return [`--listen-metrics-urls=http://${m.address}:${metricsPort}`];
        },
      },
    });
    const withPort = {
      ...cluster,
      etcd: { ...cluster.etcd, metricsPort, metricsScheme: 'http' as const },
    };
    const [t] = metricsTargets(withPort);
    assert.equal(t!.url, `http://${etcd.members[0]!.address}:${metricsPort}/metrics`);
    const window = new MetricsWindow();
    const round = await scrapeInto(window, [t!], {});
    assert.deepEqual([...round.errors], []);
    assert.equal(window.summary(t!.member)?.hasLeader, true);
  });
});
