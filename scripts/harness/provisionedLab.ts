/**
 * A lab with etcd running, for benchmarks and system tests: a temp folder with the lab key,
 * Debian's etcd to upload, edge hosts booted with their host keys known, the inventory (cluster
 * `bench` unless named; more cluster lines such as a `k3s:` block), the certificates, and etcd
 * provisioned over SSH and healthy. `stop()` stops the hosts and removes the folder, also when
 * setting up failed half-way.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster } from '../../src/core/inventory/types';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import type { SshContext } from '../../src/core/ssh/hostSession';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts, type EdgeHost } from './edgeHosts';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
  type LabHost,
} from './lab';
import { makeTempDir, removeTempDir } from './processes';
import { makeKey } from './sshd';

export interface ProvisionedLab {
  dir: string;
  file: string;
  hosts: EdgeHost[];
  ssh: SshContext;
  cluster: Cluster;
  stop(): Promise<void>;
}

export interface LabOptions {
  /** The cluster's name (default `bench`). */
  cluster?: string;
  /** More lines of the cluster entry, for example a `k3s:` block. */
  clusterLines?: string[];
}

export async function provisionedLab(
  prefix: string,
  specs: LabHost[],
  opts: LabOptions = {},
): Promise<ProvisionedLab> {
  const dir = await makeTempDir(prefix);
  let hosts: EdgeHost[] = [];
  const stop = async () => {
    await stopEdgeHosts(hosts);
    await removeTempDir(dir);
  };
  try {
    const key = makeKey(dir, 'id_lab');
    await stageEtcdBinaries(dir);
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({
        cluster: opts.cluster ?? 'bench',
        hosts: specs,
        identityFile: 'id_lab',
        ...(opts.clusterLines ? { clusterLines: opts.clusterLines } : {}),
      }),
    );
    const ssh = labSsh(dir);
    const cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    const p = await provisionEtcd(cluster, { dryRun: false, ssh });
    if (!p.healthy) throw new Error(`provisioning not healthy: ${p.healthSummary}`);
    return { dir, file, hosts, ssh, cluster, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
