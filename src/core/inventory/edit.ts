/**
 * Small, surgical edits of k3s-etcd.yaml: only the value's own characters change, so comments,
 * ordering and formatting stay as the person wrote them. Written atomically with the file's own
 * mode (files/atomicWrite).
 */
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { K3sEtcdError } from '../errors';
import { writeFileAtomic } from '../files/atomicWrite';
import { isIpOrHostname } from './addressFormat';

/** Replaces the `address` of host `hostName` in cluster `clusterName`; returns the old value. */
export async function setHostAddress(
  file: string,
  clusterName: string,
  hostName: string,
  address: string,
): Promise<string> {
  if (!isIpOrHostname(address)) {
    throw new K3sEtcdError('usage', `"${address}" is not an IP address or a host name.`);
  }
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const clusters = doc.get('clusters', true);
  if (!isSeq(clusters))
    throw new K3sEtcdError('inventory-invalid', `${file} has no clusters list.`);
  const cluster = clusters.items.find((c) => isMap(c) && c.get('name') === clusterName);
  const hosts = isMap(cluster) ? cluster.get('hosts', true) : undefined;
  const host = isSeq(hosts)
    ? hosts.items.find((h) => isMap(h) && h.get('name') === hostName)
    : undefined;
  const node = isMap(host) ? host.get('address', true) : undefined;
  if (!isScalar(node) || !node.range) {
    throw new K3sEtcdError(
      'inventory-invalid',
      `Cannot find the address of host ${hostName} (cluster ${clusterName}) in ${file}.`,
    );
  }
  const [start, end] = node.range;
  const old = String(node.value);
  const quoted = address.includes(':') ? `"${address}"` : address;
  const next = text.slice(0, start) + quoted + text.slice(end);
  await writeFileAtomic(file, next);
  return old;
}

/**
 * Sets `etcd.quotaBackendBytes` of cluster `clusterName` (`4GiB`, or bytes); returns the old
 * value. An existing value is replaced in place; a missing one is added under `etcd:`.
 */
export async function setEtcdQuota(
  file: string,
  clusterName: string,
  value: string,
): Promise<string | undefined> {
  if (!/^[1-9][0-9]*(KiB|MiB|GiB)?$/.test(value))
    throw new K3sEtcdError('usage', `"${value}" is not a size such as 4GiB or 512MiB.`);
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const clusters = doc.get('clusters', true);
  if (!isSeq(clusters))
    throw new K3sEtcdError('inventory-invalid', `${file} has no clusters list.`);
  const index = clusters.items.findIndex((c) => isMap(c) && c.get('name') === clusterName);
  if (index < 0)
    throw new K3sEtcdError('inventory-invalid', `No cluster ${clusterName} in ${file}.`);
  const path = ['clusters', index, 'etcd', 'quotaBackendBytes'];
  const node = doc.getIn(path, true);
  const scalar = /^\d+$/.test(value) ? Number(value) : value;
  if (isScalar(node) && node.range) {
    const [start, end] = node.range;
    await writeFileAtomic(file, text.slice(0, start) + value + text.slice(end));
    return String(node.value);
  }
  doc.setIn(path, scalar);
  await writeFileAtomic(file, doc.toString());
  return undefined;
}
