/**
 * The quota etcd really runs with, read back from /metrics, beside the inventory's: `status`
 * names the members whose quota differs from etcd.quotaBackendBytes, and --json carries both.
 * A real 1-member mutual-TLS etcd started with a 16 MiB quota (not through provision).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { runCli } from '../fixtures/cli';
import type { EtcdCluster } from '../../scripts/harness/etcd';
import { etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

const { tempDir, track } = testScope('k3s-etcd-quota-');
const QUOTA = 16 * 1024 * 1024;

/** The CLI in-process, as a script would run it (not interactive, from this folder). */
const cli = (args: string[]) => runCli(args, { cwd: process.cwd() });

describe('status: the effective quota from /metrics next to the inventory', () => {
  let ws = '';
  let etcd: EtcdCluster;
  const inventory = async (file: string, etcdKeys: string) => {
    const text = harnessInventory(etcd, { pki: 'pki/edge-t' }).replace(
      'etcd: { version: v3.4.23,',
      `etcd: { version: v3.4.23,${etcdKeys}`,
    );
    await writeFile(join(ws, file), text);
    return join(ws, file);
  };

  before(async () => {
    ws = await tempDir();
    ({ etcd } = await etcdWithOurCerts(join(ws, 'pki', 'edge-t'), 1, {
      track,
      extra: { samePorts: true, extraArgs: [`--quota-backend-bytes=${QUOTA}`] },
    }));
  });

  it('an inventory without the key: the member runs 16 MiB, not the default 2 GiB, and status says so', async () => {
    const file = await inventory('plain.yaml', '');
    const text = await cli(['status', '--inventory', file]);
    assert.equal(text.code, 0, text.err);
    const endpoint = etcd.endpoints[0]!;
    assert.ok(
      text.out
        .split('\n')
        .includes(
          `quota: the inventory asks for etcd's default 2 GiB (no etcd.quotaBackendBytes), but etcd runs with ${endpoint} 16 MiB: apply it with \`k3s-etcd provision etcd --cluster edge-t\``,
        ),
      text.out,
    );
    const j = await cli(['status', '--inventory', file, '--json']);
    assert.equal(j.code, 0, j.err);
    const rows = JSON.parse(j.out) as Array<Record<string, unknown>>;
    assert.equal(rows[0]?.['quotaBackendBytes'], QUOTA);
    assert.equal(rows[0]?.['inventoryQuotaBackendBytes'], 2 * 1024 ** 3);
  });

  it('the inventory asks for what etcd runs with: no quota line, both figures in --json', async () => {
    const file = await inventory('tuned.yaml', ' quotaBackendBytes: 16MiB,');
    const text = await cli(['status', '--inventory', file]);
    assert.equal(text.code, 0, text.err);
    assert.doesNotMatch(text.out, /^quota:/m);
    const rows = JSON.parse((await cli(['status', '--inventory', file, '--json'])).out) as Array<
      Record<string, unknown>
    >;
    assert.equal(rows[0]?.['quotaBackendBytes'], QUOTA);
    assert.equal(rows[0]?.['inventoryQuotaBackendBytes'], QUOTA);
  });
});
