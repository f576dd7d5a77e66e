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
 * Sets `etcd.<key>` of cluster `clusterName` to `value` (already checked by the caller); returns
 * the old value (undefined when the key was not there). An existing value is replaced in place;
 * a missing key is added to the cluster's `etcd` mapping (comments kept).
 */
async function setEtcdKey(
  file: string,
  clusterName: string,
  key: string,
  value: string | number,
): Promise<string | undefined> {
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const clusters = doc.get('clusters', true);
  const cluster = isSeq(clusters)
    ? clusters.items.find((c) => isMap(c) && c.get('name') === clusterName)
    : undefined;
  if (!isMap(cluster)) {
    throw new K3sEtcdError('inventory-invalid', `Cannot find cluster ${clusterName} in ${file}.`);
  }
  const etcd = cluster.get('etcd', true);
  const node = isMap(etcd) ? etcd.get(key, true) : undefined;
  if (isScalar(node) && node.range) {
    const [start, end] = node.range;
    await writeFileAtomic(file, text.slice(0, start) + String(value) + text.slice(end));
    return String(node.value);
  }
  if (isMap(etcd)) etcd.set(key, value);
  else cluster.set('etcd', doc.createNode({ [key]: value }));
  await writeFileAtomic(file, doc.toString());
  return undefined;
}

/**
 * Sets `etcd.version` of cluster `clusterName` (after an upgrade, so later provisioning does not
 * go back); returns the old value (undefined when the key was not there).
 */
export async function setEtcdVersion(
  file: string,
  clusterName: string,
  version: string,
): Promise<string | undefined> {
  if (!/^v?\d+\.\d+\.\d+$/.test(version)) {
    throw new K3sEtcdError('usage', `"${version}" is not an etcd version (v3.x.y).`);
  }
  return setEtcdKey(file, clusterName, 'version', version);
}

/**
 * Sets `etcd.quotaBackendBytes` of cluster `clusterName` (`4GiB`, or bytes: the NOSPACE
 * rescue's larger quota); returns the old value.
 */
export async function setEtcdQuota(
  file: string,
  clusterName: string,
  value: string,
): Promise<string | undefined> {
  if (!/^[1-9][0-9]*(KiB|MiB|GiB)?$/.test(value))
    throw new K3sEtcdError('usage', `"${value}" is not a size such as 4GiB or 512MiB.`);
  return setEtcdKey(
    file,
    clusterName,
    'quotaBackendBytes',
    /^\d+$/.test(value) ? Number(value) : value,
  );
}
