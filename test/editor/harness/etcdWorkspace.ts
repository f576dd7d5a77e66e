/**
 * A UI test's workspace on a real etcd: a temp folder holding pki/edge-t (our certificates), a
 * running mutual-TLS etcd of `members` sharing their ports, and a k3s-etcd.yaml naming it.
 * Both are removed by `cleanups` (see uiTestScope).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EtcdCluster } from '../../../scripts/harness/etcd';
import { etcdWithOurCerts } from '../../../scripts/harness/etcdTls';
import { harnessInventory } from '../../fixtures/inventory';
import { makeTempDir, removeTempDir } from '../../../scripts/harness/processes';

export async function etcdWorkspace(
  prefix: string,
  cleanups: Array<() => Promise<void>>,
  opts: { members?: 1 | 3; roles?: string[]; extraArgs?: string[] } = {},
): Promise<{ ws: string; pki: string; etcd: EtcdCluster }> {
  const ws = await makeTempDir(prefix);
  cleanups.push(() => removeTempDir(ws));
  const pki = join(ws, 'pki', 'edge-t');
  const clusters: EtcdCluster[] = [];
  cleanups.push(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
  });
  const { etcd } = await etcdWithOurCerts(pki, opts.members ?? 1, {
    track: (c) => clusters.push(c),
    extra: { samePorts: true, ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}) },
  });
  await writeFile(
    join(ws, 'k3s-etcd.yaml'),
    harnessInventory(etcd, { pki: 'pki/edge-t', ...(opts.roles ? { roles: opts.roles } : {}) }),
  );
  return { ws, pki, etcd };
}
