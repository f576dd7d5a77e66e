/**
 * A lab workspace for provisioning tests and benchmarks: an inventory naming edge hosts with a
 * key made for the lab, their host keys in the cluster's known_hosts, Debian's etcd binaries to
 * upload (the offline path), certificates generated, and an SSH context that never prompts.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import type { Cluster } from '../../src/core/inventory/types';
import type { SshContext } from '../../src/core/ssh/hostSession';
import type { EdgeHost } from './edgeHosts';

export const LAB_KNOWN_HOSTS = 'known_hosts';
export const LAB_ETCD_BIN = 'etcd-bin';

export interface LabHost {
  name: string;
  address: string;
  /** Default: the inventory's `roles` option. */
  roles?: string[];
}

/** The inventory text: etcd 3.4.23 uploaded from `etcd-bin`, each host with `identityFile`. */
export function labInventory(opts: {
  cluster: string;
  hosts: readonly LabHost[];
  identityFile: string;
  /** A comment line on top and one after each host (to check edits keep them). */
  comments?: boolean;
  /** Default external-etcd. */
  datastore?: 'external-etcd' | 'k3s-embedded-etcd';
  /** Default [etcd]. */
  roles?: string[];
  /** More lines of the cluster entry (indented by 4), for example a `k3s:` block. */
  clusterLines?: string[];
}): string {
  const roles = (opts.roles ?? ['etcd']).join(', ');
  return [
    ...(opts.comments ? [`# the ${opts.cluster}`] : []),
    'version: 1',
    'clusters:',
    `  - name: ${opts.cluster}`,
    ...(opts.datastore ? [`    datastore: ${opts.datastore}`] : []),
    `    knownHostsFile: ${LAB_KNOWN_HOSTS}`,
    `    etcd: { version: v3.4.23, install: upload, uploadPath: ${LAB_ETCD_BIN} }`,
    ...(opts.clusterLines ?? []).map((l) => `    ${l}`),
    '    hosts:',
    ...opts.hosts.map(
      (h) =>
        `      - { name: ${h.name}, address: ${h.address}, identityFile: ${opts.identityFile}, roles: [${h.roles?.join(', ') ?? roles}] }${opts.comments ? ` # ${h.name}` : ''}`,
    ),
    '',
  ].join('\n');
}

/** Debian's etcd and etcdctl in `<dir>/etcd-bin`, as a user keeps them for offline sites. */
export async function stageEtcdBinaries(dir: string): Promise<void> {
  await mkdir(join(dir, LAB_ETCD_BIN));
  for (const b of ['etcd', 'etcdctl']) await copyFile(`/usr/bin/${b}`, join(dir, LAB_ETCD_BIN, b));
}

export async function writeKnownHosts(dir: string, lines: readonly string[]): Promise<void> {
  await writeFile(join(dir, LAB_KNOWN_HOSTS), `${lines.join('\n')}\n`);
}

/** Loads the only cluster of an inventory file that must be valid. */
export async function loadCluster(file: string): Promise<Cluster> {
  const r = await loadInventoryFile(file);
  assert.equal(r.status, 'ok', JSON.stringify(r.problems));
  if (r.status !== 'ok') throw new Error(`${file} is invalid`);
  return r.inventory.clusters[0] as Cluster;
}

/** SSH as tests use it: home is the lab dir (no ~/.ssh/config), no agent, nothing asked. */
export function labSsh(dir: string, timeoutMs?: number): SshContext {
  return {
    env: { home: dir },
    agentSocket: '',
    ...(timeoutMs ? { timeoutMs } : {}),
    prompts: { secret: async () => undefined, unknownHostKey: async () => false },
  };
}

/**
 * Moves a host's sshd to `address` (the host "got a new IP"; in shared mode loopback keeps the
 * old one bindable) and resolves once it listens there.
 */
export async function moveSshd(h: EdgeHost, address: string): Promise<void> {
  const r = await h.exec(
    `sed -i 's/^ListenAddress .*/ListenAddress ${address}/' /etc/ssh/sshd_config.d/*.conf && systemctl restart ssh && for i in $(seq 50); do ss -Hltn | grep -q '${address}:22 ' && exit 0; sleep 0.1; done; exit 1`,
  );
  assert.equal(r.code, 0, `moving sshd of ${h.name} to ${address}: ${r.stderr}`);
}
