/**
 * `members`, `health` and `status` answer through rpc.ts (gRPC over Node's HTTP/2, no etcd3):
 * the same tables, the same --json, the same exit codes and problem lines as through etcd3's
 * gRPC client, on a real 3-member mutual-TLS etcd, all members up and one stopped. The expected
 * answers are computed here through etcd3 (the path these commands took before), with the same
 * row-building code; only what changes between two reads is masked (TOOK, the raft indexes).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { clusterSnapshot, type ClusterSnapshot } from '../../src/core/etcd/checks';
import { createEndpointClient, type EtcdTls } from '../../src/core/etcd/client';
import { listMembers } from '../../src/core/etcd/members';
import { scrapeMetrics } from '../../src/core/etcd/scrape';
import type { EtcdRpc, RpcOptions } from '../../src/core/etcd/rpc';
import { healthTable, membersTable, statusTable } from '../../src/core/etcd/tables';
import { runCli } from '../fixtures/cli';
import { admin, etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

const { tempDir, track } = testScope('k3s-etcd-oneshot-');

/** etcd3's client behind the one-shot interface: the gRPC path the commands took before. */
async function viaEtcd3(endpoints: readonly string[], opts: RpcOptions): Promise<EtcdRpc[]> {
  return Promise.all(
    endpoints.map(async (e) => {
      const c = await createEndpointClient(e, opts);
      return {
        range: async (key, o = {}) => {
          const r = await c.kv.range({
            key: Buffer.from(key),
            serializable: o.serializable ?? false,
          });
          return { kvs: r.kvs.map((kv) => ({ key: kv.key, value: kv.value })) };
        },
        memberList: () => c.cluster.memberList({}),
        status: () => c.maintenance.status({}),
        alarms: async () => {
          const r = await c.maintenance.alarm({ action: 'Get', memberID: '0', alarm: 'None' });
          return {
            alarms: r.alarms.map((a) => ({ memberID: a.memberID, alarm: String(a.alarm) })),
          };
        },
        // The HTTPS scrape `status` took before it read /metrics on its gRPC connection.
        get: async (path) =>
          Buffer.from((await scrapeMetrics(`${e}${path}`, opts.tls ? { tls: opts.tls } : {})).text),
        close: () => c.close(),
      } satisfies EtcdRpc;
    }),
  );
}

/** Table lines with the cells that move between two reads blanked (by header name). */
function maskTable(table: string, moving: string[]): string {
  const lines = table.split('\n');
  const header =
    lines
      .find((l) => l.startsWith('|'))
      ?.split('|')
      .map((c) => c.trim()) ?? [];
  const cols = moving.map((m) => header.indexOf(m)).filter((i) => i > 0);
  return lines
    .map((l) =>
      l.startsWith('|')
        ? l
            .split('|')
            .map((c, i) => (cols.includes(i) ? '*' : c.trim()))
            .join('|')
        : l.replace(/-+/g, '-'),
    )
    .join('\n');
}

const maskHealth = (rows: unknown) =>
  (rows as Array<Record<string, unknown>>).map((r) => ({ ...r, tookMs: 0 }));
const maskStatus = (rows: unknown) =>
  (rows as Array<Record<string, unknown>>).map((r) => ({
    ...r,
    raftIndex: '*',
    raftAppliedIndex: '*',
  }));

describe('one-shot commands over rpc.ts answer as over etcd3', () => {
  it('members, health and status: tables, --json, exit codes, problems; one member stopped', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    const { etcd } = await etcdWithOurCerts(pki, 3, { track, extra: { samePorts: true } });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const tls: EtcdTls = admin(pki);
    const cli = (args: string[]) => runCli(args, { cwd: dir });
    const expected = (): Promise<ClusterSnapshot> =>
      clusterSnapshot(etcd.endpoints, { tls, timeoutMs: 3000, open: viaEtcd3, quota: true });

    for (const phase of ['all up', 'm-3 stopped']) {
      if (phase === 'm-3 stopped') await etcd.stopMember('m-3');
      const want = await expected();
      const wantMembers = await listMembers(etcd.endpoints, { tls, open: viaEtcd3 });

      const members = await cli(['members', '--timeout', '3000']);
      assert.equal(members.code, 0, `${phase}: ${members.err}`);
      assert.equal(members.out, membersTable(wantMembers), phase);
      const membersJson = await cli(['members', '--json', '--timeout', '3000']);
      assert.deepEqual(JSON.parse(membersJson.out), wantMembers, phase);

      const health = await cli(['health', '--timeout', '3000']);
      assert.equal(health.code, want.healthy ? 0 : 1, `${phase}: ${health.err}`);
      assert.equal(
        maskTable(health.out, ['TOOK']),
        maskTable(healthTable(want.health), ['TOOK']),
        phase,
      );
      const problems = want.health
        .filter((r) => r.problem)
        .map((r) => `${r.endpoint}: ${r.problem!.summary}. ${r.problem!.hint}`);
      assert.equal(health.err, problems.join('\n'), phase);
      const healthJson = await cli(['health', '--json', '--timeout', '3000']);
      assert.deepEqual(maskHealth(JSON.parse(healthJson.out)), maskHealth(want.health), phase);

      const status = await cli(['status', '--timeout', '3000']);
      const down = want.status.some((r) => r.problem);
      assert.equal(status.code, down ? 1 : 0, `${phase}: ${status.err}`);
      const moving = ['RAFT INDEX', 'RAFT APPLIED INDEX'];
      assert.equal(
        maskTable(status.out, moving),
        maskTable(statusTable(want.status), moving),
        phase,
      );
      const statusJson = await cli(['status', '--json', '--timeout', '3000']);
      assert.deepEqual(
        maskStatus(JSON.parse(statusJson.out)),
        maskStatus(want.status.map((r) => ({ ...r, inventoryQuotaBackendBytes: 2147483648 }))),
        phase,
      );
      // The quota each member runs with: etcd's default on every member that answers.
      assert.deepEqual(
        (JSON.parse(statusJson.out) as Array<{ quotaBackendBytes?: number }>).map(
          (r) => r.quotaBackendBytes,
        ),
        want.status.map((r) => (r.problem ? undefined : 2147483648)),
        phase,
      );
      if (down) assert.match(health.err, /connection refused by 127\.0\.1\.\d+:\d+/, phase);
    }
  });
});
