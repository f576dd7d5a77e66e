/**
 * The integration tier's entry to the etcd harness: a real etcd serving mutual TLS with
 * certificates from our own generator (scripts/harness/etcdTls.ts), the inventory builders
 * (test/fixtures/inventory.ts), and `testScope`, which removes a test file's clusters and dirs.
 */
import { after } from 'node:test';
import type { EtcdCluster } from '../../../scripts/harness/etcd';
import { makeTempDir, removeTempDir } from '../../../scripts/harness/processes';

export { admin, etcdWithOurCerts, withMemberPorts } from '../../../scripts/harness/etcdTls';
export { cluster, harnessInventory, host } from '../../fixtures/inventory';

/**
 * Temp dirs and clusters a test file makes, all removed in one `after` hook (also on failure):
 * `const { tempDir, track } = testScope('k3s-etcd-pki-');`
 */
export function testScope(prefix: string): {
  tempDir: () => Promise<string>;
  track: (c: EtcdCluster) => void;
} {
  const dirs: string[] = [];
  const clusters: EtcdCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
    await Promise.all(dirs.map((d) => removeTempDir(d)));
  });
  return {
    tempDir: async () => {
      const d = await makeTempDir(prefix);
      dirs.push(d);
      return d;
    },
    track: (c) => {
      clusters.push(c);
    },
  };
}
