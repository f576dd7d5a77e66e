/**
 * Rolling changes on three real systemd hosts (Debian in systemd-nspawn, sharing this machine's
 * network), with a client writing to all three endpoints the whole time (a write fails only when
 * no endpoint takes it: scripts/harness/writer.ts):
 *  - a new cluster starts its three members together, as before;
 *  - a change that restarts every member (the env file: metricsPort) is previewed with its
 *    order and reason, then restarts each member exactly once, one at a time (their down times,
 *    read from systemd on the shared monotonic clock, never overlap), the leader last, with no
 *    failed write; new certificates for every member (re-issued leaves) roll the same way;
 *  - a change etcd rejects (an unknown flag in etcd.extraArgs, on the unit's command line; a
 *    metrics port sshd holds, in the env file) stops at the first member, whose previous file
 *    is put back and etcd restarted on it; the other two are untouched (same process, same
 *    file) and the cluster stays healthy, with no failed write;
 *  - a quota set in the inventory is what every member's /metrics reports after one roll;
 *  - `status --settings` reads each member's running etcd on its host: the inventory's tuning
 *    after provision, and before it the difference with what to run (provision, a restart when
 *    only the process is behind its files, a stopped member read from its files).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Cluster } from '../../src/core/inventory/types';
import { connectionFor } from '../../src/core/etcd/connection';
import { generateCertificateSet, reissueMember } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { liveCluster } from '../../src/core/rolling/live';
import { rollingPlanLines } from '../../src/core/rolling/restarts';
import type { SshContext } from '../../src/core/ssh/hostSession';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { startWriter, type Writer } from '../../scripts/harness/writer';
import { etcdStarts as starts, etcdUnitState as unitState } from '../../scripts/harness/etcdUnit';
import { main } from '../../src/cli/main';
import { captureIO, runCli } from '../fixtures/cli';

const ADDR = ['127.0.1.51', '127.0.1.52', '127.0.1.53'];
const NAMES = ['edge-1', 'edge-2', 'edge-3'];

/**
 * A write the client retried was only ever for a leader change, a member restarting, or its 2 s
 * deadline (the reasons of scripts/harness/writer.ts), never another error (a refused
 * certificate, a permission, a compaction): the retry is the client's failover, not a fault of
 * the change. The deadline is among them: a run of this file saw one or two of them in half of
 * its rolls (certificates: {"endpoint down":6,"timeout":1}; the upgrade: {"endpoint down":4,
 * "leader changed":1,"timeout":2}) while a client logging each error saw none in twelve rolls.
 */
function retriedOnlyForRestarts(retried: Record<string, number>): void {
  for (const reason of Object.keys(retried))
    assert.ok(
      reason === 'leader changed' || reason === 'endpoint down' || reason === 'timeout',
      `a write was retried for "${reason}" (${JSON.stringify(retried)}): only a leader change, a member restarting or a deadline may cost a retry`,
    );
}

const sha = async (h: EdgeHost, path: string) =>
  (await h.exec(`sha256sum ${path} | cut -d' ' -f1`)).stdout.trim();

describe('rolling changes on a live etcd of three real hosts', () => {
  let dir = '';
  let file = '';
  let hosts: EdgeHost[] = [];
  let ssh: SshContext;
  let key = '';
  let baseYaml = '';

  /** The lab inventory with `extra` added to its etcd mapping. */
  const withEtcd = async (extra: string): Promise<Cluster> => {
    await writeFile(
      file,
      extra
        ? baseYaml.replace('uploadPath: etcd-bin }', `uploadPath: etcd-bin, ${extra} }`)
        : baseYaml,
    );
    return loadCluster(file);
  };
  const leaderName = async (c: Cluster) =>
    (await liveCluster(await connectionFor(c)).probe()).find((r) => r.isLeader)?.name;

  before(async () => {
    dir = await makeTempDir('k3s-etcd-rolling-');
    const k = makeKey(dir, 'id_lab');
    key = k.file;
    hosts = await startEdgeHosts({
      hosts: NAMES.map((name, i) => ({ name, address: ADDR[i] as string })),
      authorizedKeys: [k.publicLine],
    });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    file = join(dir, 'k3s-etcd.yaml');
    baseYaml = labInventory({
      cluster: 'roll',
      hosts: NAMES.map((name, i) => ({ name, address: ADDR[i] as string })),
      identityFile: key,
    });
    await generateCertificateSet(await withEtcd(''));
    ssh = labSsh(dir);
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('a new cluster (no member running) starts all members together', async () => {
    const cluster = await withEtcd('');
    const notes: string[] = [];
    const r = await provisionEtcd(cluster, {
      dryRun: false,
      ssh,
      onLine: (_h, l) => notes.push(l),
    });
    assert.equal(r.healthy, true, r.healthSummary);
    assert.equal(r.rolling?.mode, 'together');
    assert.deepEqual(
      r.rolling?.order.map((o) => o.member),
      NAMES,
    );
    assert.ok(
      notes.some((l) => /every member is changed at once/.test(l)),
      notes.join('\n'),
    );
    assert.ok(!notes.some((l) => /^rolling /.test(l)));
  });

  it('a change that restarts every member: previewed, then one member at a time, the leader last, no failed write', async () => {
    const cluster = await withEtcd('metricsPort: 2381');
    const leader = await leaderName(cluster);
    assert.ok(leader, 'the cluster has a leader');

    const preview = await provisionEtcd(cluster, { dryRun: true, ssh });
    const lines = rollingPlanLines(preview.rolling!);
    // The CLI's preview shows the same order under its step table.
    const { io, out } = captureIO(dir);
    assert.equal(await main(['provision', 'etcd', '--dry-run'], io), 0, out.join('\n'));
    const cliText = out.join('\n');
    for (const l of lines) assert.ok(cliText.includes(l), `${l}\n---\n${cliText}`);
    // --json carries the same plan as its own field (the hosts' runs as before).
    const j = captureIO(dir);
    assert.equal(await main(['provision', 'etcd', '--dry-run', '--json'], j.io), 0);
    const parsed = JSON.parse(j.out.join('\n')) as {
      dryRun: boolean;
      hosts: unknown[];
      rolling: unknown;
    };
    assert.equal(parsed.dryRun, true);
    assert.equal(parsed.hosts.length, 3);
    assert.deepEqual(parsed.rolling, JSON.parse(JSON.stringify(preview.rolling)));
    assert.equal(preview.rolling?.mode, 'rolling');
    assert.equal(preview.rolling?.order.at(-1)?.member, leader, lines.join('\n'));
    assert.match(lines[0] ?? '', /etcd restarts on 3 member\(s\), one at a time/);
    for (const o of preview.rolling!.order)
      assert.deepEqual(o.why, ['environment /etc/etcd/etcd.env (0600)'], o.member);
    assert.match(
      lines.at(-1) ?? '',
      new RegExp(`^  3\\. ${leader} \\(leader\\): restarts for environment /etc/etcd/etcd\\.env`),
    );

    await rollsEveryMember(cluster, leader!, 'metricsPort');
    const res = await fetch(`http://${ADDR[0]}:2381/metrics`);
    assert.match(await res.text(), /etcd_server_has_leader 1/, 'the change is in effect');
  });

  it('new certificates for every member (re-issued leaves) roll the same way', async () => {
    const cluster = await withEtcd('metricsPort: 2381');
    for (const n of NAMES)
      await reissueMember(cluster, n, [], { confirmReplace: async () => true });
    const leader = await leaderName(cluster);
    const preview = await provisionEtcd(cluster, { dryRun: true, ssh });
    assert.equal(preview.rolling?.order.at(-1)?.member, leader);
    for (const o of preview.rolling!.order)
      assert.deepEqual(
        o.why,
        [
          'server certificate /etc/etcd/pki/server.pem',
          'member key /etc/etcd/pki/server-key.pem (0600, etcd)',
          'peer certificate /etc/etcd/pki/peer.pem',
          'member key /etc/etcd/pki/peer-key.pem (0600, etcd)',
        ],
        o.member,
      );
    await rollsEveryMember(cluster, leader!, 'certificates');
    for (const [i, h] of hosts.entries())
      assert.equal(
        await sha(h, '/etc/etcd/pki/server.pem'),
        createHash('sha256')
          .update(await readFile(join(cluster.pki.dir, NAMES[i]!, 'server.pem')))
          .digest('hex'),
        `${h.name} serves its new certificate`,
      );
  });

  /**
   * Runs a change that restarts every member with a client writing the whole time: each member
   * restarted exactly once, one at a time, `leader` last after move-leader, no failed write.
   */
  async function rollsEveryMember(cluster: Cluster, leader: string, label: string): Promise<void> {
    const conn = await connectionFor(cluster);
    const before = await Promise.all(hosts.map(unitState));
    const startsBefore = await Promise.all(hosts.map(starts));
    let writer: Writer | undefined = await startWriter({
      endpoints: conn.endpoints,
      tls: conn.tls,
    });
    try {
      await new Promise((r) => setTimeout(r, 2000));
      const log: string[] = [];
      const t0 = performance.now();
      const r = await provisionEtcd(cluster, {
        dryRun: false,
        ssh,
        onLine: (h, l) => log.push(`[${h}] ${l}`),
      });
      const ms = performance.now() - t0;
      await new Promise((res) => setTimeout(res, 1000));
      const stats = await writer.stop();
      writer = undefined;
      assert.deepEqual(
        r.runs.map((x) => `${x.host} ${x.status}`),
        NAMES.map((n) => `${n} changed`),
        JSON.stringify(r.runs.map((x) => x.error)) + log.join('\n'),
      );
      assert.equal(r.healthy, true, r.healthSummary);

      const after = await Promise.all(hosts.map(unitState));
      for (const [i, h] of hosts.entries()) {
        assert.notEqual(after[i]!.invocation, before[i]!.invocation, `${h.name} restarted`);
        assert.equal(
          (await starts(h)) - startsBefore[i]!,
          1,
          `${h.name} started exactly once: ${(await h.exec('journalctl -u etcd.service -o short-monotonic --no-pager | grep -E "Start|Stop|exit|fail" | tail -n 12')).stdout}`,
        );
      }
      // One at a time: sorted by when each went down, each was up again before the next went down.
      const byDown = hosts
        .map((h, i) => ({ name: h.name, ...after[i]! }))
        .sort((a, b) => a.downAt - b.downAt);
      for (let i = 1; i < byDown.length; i++) {
        assert.ok(
          byDown[i]!.downAt > byDown[i - 1]!.upAt,
          `${byDown[i]!.name} went down only after ${byDown[i - 1]!.name} was up again`,
        );
      }
      assert.equal(byDown.at(-1)!.name, leader, 'the leader last');
      assert.ok(
        log.some((l) => new RegExp(`move-leader: ${leader} → `).test(l)),
        log.join('\n'),
      );
      assert.equal(stats.failed, 0, `failed writes: ${stats.failures.join('; ')}`);
      assert.ok(stats.ok > 50, `the client kept writing (${stats.ok} writes)`);
      retriedOnlyForRestarts(stats.retried);
      console.log(
        `${label}: rolled 3 members in ${Math.round(ms)} ms; ${stats.ok} writes, retried ${JSON.stringify(stats.retried)}, longest gap ${Math.round(stats.maxGapMs)} ms; order ${byDown.map((b) => b.name).join(' → ')}`,
      );
    } finally {
      await writer?.stop();
    }
  }

  /** A change etcd rejects, in `file`: the first member fails, gets `file` back; the rest untouched. */
  async function rejected(extra: string, file: string): Promise<void> {
    const cluster = await withEtcd(extra);
    const conn = await connectionFor(cluster);
    const before = await Promise.all(hosts.map(unitState));
    const filesBefore = await Promise.all(hosts.map((h) => sha(h, file)));
    const writer = await startWriter({ endpoints: conn.endpoints, tls: conn.tls });
    let stats;
    const log: string[] = [];
    let r;
    try {
      r = await provisionEtcd(cluster, {
        dryRun: false,
        ssh,
        onLine: (h, l) => log.push(`[${h}] ${l}`),
      });
    } finally {
      stats = await writer.stop();
    }
    const failed = r.runs.filter((x) => x.error && !/not started/.test(x.error.message));
    assert.equal(failed.length, 1, JSON.stringify(r.runs.map((x) => x.error)));
    const first = failed[0]!;
    console.log(`rejected ${extra}: ${first.error!.message}`);
    const i = NAMES.indexOf(first.host);
    assert.match(
      first.error!.message,
      new RegExp(
        `^${first.host}.*\\(its previous files were put back and etcd restarted on them: ${first.host} is healthy again\\)$`,
      ),
    );
    for (const other of r.runs.filter((x) => x !== first))
      assert.match(
        other.error!.message,
        new RegExp(
          `${other.host}: not started: the rollout stopped at ${first.host}, which failed`,
        ),
      );

    const after = await Promise.all(hosts.map(unitState));
    const filesAfter = await Promise.all(hosts.map((h) => sha(h, file)));
    assert.deepEqual(filesAfter, filesBefore, `every ${file} as before (the first one put back)`);
    for (const [j, h] of hosts.entries()) {
      if (j === i)
        assert.notEqual(
          after[j]!.invocation,
          before[j]!.invocation,
          `${h.name} restarted on its previous files`,
        );
      else assert.deepEqual(after[j], before[j], `${h.name} untouched`);
    }
    const table = await liveCluster(conn).probe();
    assert.deepEqual(
      table.map((m) => `${m.name} ${m.healthy}`).sort(),
      NAMES.map((n) => `${n} true`),
    );
    assert.equal(stats.failed, 0, `failed writes: ${stats.failures.join('; ')}`);
    assert.ok(stats.ok > 50, `the client kept writing (${stats.ok} writes)`);
    retriedOnlyForRestarts(stats.retried);
    assert.equal(
      (await hosts[i]!.exec('ls /var/tmp | grep -c k3s-etcd-rollback || true')).stdout.trim(),
      '0',
      'the rollback set is removed once the member is healthy again',
    );
  }

  it('a flag etcd rejects (etcd.extraArgs) stops at the first member, puts its unit back, and leaves the others untouched', async () => {
    await rejected(
      'metricsPort: 2381, extraArgs: [--no-such-flag=1]',
      '/etc/systemd/system/etcd.service',
    );
  });

  it('a port etcd cannot bind (its metrics on the port sshd holds) stops at the first member and puts its env file back', async () => {
    // sshd listens on each host's address:22: etcd cannot bind its metrics there and exits.
    await rejected('metricsPort: 22', '/etc/etcd/etcd.env');
  });

  it('a quota set in the inventory (etcd.quotaBackendBytes) is what every member reports, after one rolling restart', async () => {
    const cluster = await withEtcd('metricsPort: 2381, quotaBackendBytes: 64MiB');
    // Prometheus's text format writes it as a float (6.7108864e+07).
    const quota = async (addr: string) =>
      Number(
        /^etcd_server_quota_backend_bytes (\S+)$/m.exec(
          await (await fetch(`http://${addr}:2381/metrics`)).text(),
        )?.[1],
      );
    assert.notEqual(await quota(ADDR[0]!), 64 * 2 ** 20, 'not in effect before');
    const preview = await provisionEtcd(cluster, { dryRun: true, ssh });
    for (const o of preview.rolling!.order)
      assert.deepEqual(o.why, ['environment /etc/etcd/etcd.env (0600)'], o.member);
    await rollsEveryMember(cluster, (await leaderName(cluster))!, 'quotaBackendBytes');
    for (const a of ADDR) assert.equal(await quota(a), 64 * 2 ** 20, `${a} runs with 64 MiB`);
  });

  it("status --settings reads what each member's etcd runs with on its host: the inventory's after provision, the difference and what to run before", async () => {
    const settings = async (json = false) => {
      const r = await runCli(['status', '--settings', ...(json ? ['--json'] : [])], {
        cwd: dir,
      });
      return { code: r.code, out: r.out, err: r.err };
    };
    const cell = (text: string, key: string) =>
      new RegExp(`^\\| ${key} +\\| ${text} +\\| ${text} +\\| ${text} +\\| ${text} +\\|$`, 'm');
    // A tuning key set in the inventory and provisioned: etcd runs with it on every member.
    const cluster = await withEtcd(
      'metricsPort: 2381, quotaBackendBytes: 64MiB, snapshotCount: 20000, extraArgs: [--log-level=warn]',
    );
    const r = await provisionEtcd(cluster, { dryRun: false, ssh });
    assert.equal(r.healthy, true, r.healthSummary);
    const ok = await settings();
    assert.equal(ok.code, 0, `${ok.out}\n${ok.err}`);
    assert.match(
      ok.out,
      /^\| +KEY +\| +INVENTORY +\| +edge-1 +\| +edge-2 +\| +edge-3 +\|$/m,
      ok.out,
    );
    assert.match(ok.out, cell('64 MiB', 'quotaBackendBytes'), ok.out);
    assert.match(ok.out, cell('20000', 'snapshotCount'), ok.out);
    assert.match(ok.out, cell('--log-level=warn', 'extraArgs'), ok.out);
    assert.match(ok.out, /^Every member runs with the inventory's settings\.$/m);
    const j = JSON.parse((await settings(true)).out) as {
      agree: boolean;
      members: Array<{ member: string; source: string; pid?: number; version?: string }>;
    };
    assert.equal(j.agree, true);
    for (const [i, h] of hosts.entries()) {
      const m = j.members.find((x) => x.member === NAMES[i]);
      assert.equal(m?.source, 'process', `${h.name} read from its running etcd`);
      assert.equal(String(m?.pid), (await unitState(h)).pid, `${h.name}: systemd's MainPID`);
      assert.equal(m?.version, '3.4.23');
    }

    // Changed in the inventory, not provisioned: every member differs, with the command to run.
    await withEtcd(
      'metricsPort: 2381, quotaBackendBytes: 64MiB, snapshotCount: 30000, extraArgs: [--log-level=warn]',
    );
    const off = await settings();
    assert.equal(off.code, 1, off.out);
    assert.match(
      off.out,
      /^\| snapshotCount +\| 30000 +\| \* 20000 +\| \* 20000 +\| \* 20000 +\|$/m,
      off.out,
    );
    assert.match(off.out, cell('64 MiB', 'quotaBackendBytes'), 'the rest still agrees');
    assert.match(
      off.out,
      /^to do: edge-1, edge-2, edge-3 run with other settings than the inventory's: apply them with `k3s-etcd provision etcd --cluster roll`/m,
    );

    // edge-1's env file says the new value but etcd was not restarted on it: a restart, not a
    // provision; edge-3 stopped: read from its files, and said so.
    await hosts[0]!.exec(
      "sed -i 's/^ETCD_SNAPSHOT_COUNT=20000$/ETCD_SNAPSHOT_COUNT=30000/' /etc/etcd/etcd.env",
    );
    await hosts[2]!.exec('systemctl stop etcd');
    try {
      const mixed = await settings();
      console.log(`status --settings, edge-1 not restarted, edge-3 stopped:\n${mixed.out}`);
      assert.equal(mixed.code, 1, mixed.out);
      assert.match(mixed.out, /^to do: edge-2 runs with other settings/m, mixed.out);
      assert.match(
        mixed.out,
        /^to do: edge-1: the env file and the unit already hold the inventory's settings but etcd was not restarted on them/m,
      );
      assert.match(mixed.out, /^to do: etcd is not running on edge-3/m);
      assert.match(
        mixed.out,
        /^edge-3 \(edge-3\): etcd 3\.4\.23, etcd is not running: from \/etc\/etcd\/etcd\.env/m,
      );
      assert.match(
        mixed.out,
        /^\| snapshotCount +\| 30000 +\| \* 20000 +\| \* 20000 +\| \* 20000 +\|$/m,
      );
    } finally {
      await hosts[2]!.exec('systemctl start etcd');
    }
  });
});
