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

/**
 * Moves the `etcd` role of cluster `clusterName` from host `from` to host `to` (a member
 * replaced on another host): `to` gains it (unless it has it), `from` loses it, and `from`'s
 * entry goes when no role is left (the inventory wants at least one). Flow-style roles
 * (`roles: [etcd, k3s-server]`) and a host on its own line are edited in the text, so every
 * other line, comment and spacing stays as written; other layouts go through the YAML model.
 * Returns whether `from`'s entry was removed.
 */
export async function moveEtcdRole(
  file: string,
  clusterName: string,
  from: string,
  to: string,
): Promise<{ removedHost: boolean }> {
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const clusters = doc.get('clusters', true);
  const cluster = isSeq(clusters)
    ? clusters.items.find((c) => isMap(c) && c.get('name') === clusterName)
    : undefined;
  const hosts = isMap(cluster) ? cluster.get('hosts', true) : undefined;
  const find = (name: string) =>
    isSeq(hosts) ? hosts.items.find((h) => isMap(h) && h.get('name') === name) : undefined;
  const a = find(from);
  const b = find(to);
  const ra = isMap(a) ? a.get('roles', true) : undefined;
  const rb = isMap(b) ? b.get('roles', true) : undefined;
  if (!isSeq(hosts) || !isMap(a) || !isSeq(ra) || !isSeq(rb)) {
    throw new K3sEtcdError(
      'inventory-invalid',
      `Cannot find the roles of hosts ${from} and ${to} (cluster ${clusterName}) in ${file}.`,
    );
  }
  const value = (n: unknown) => String(isScalar(n) ? n.value : n);
  const keepA = ra.items.map(value).filter((r) => r !== 'etcd');
  const wantB = rb.items.map(value);
  if (!wantB.includes('etcd')) wantB.push('etcd');
  const removedHost = keepA.length === 0;

  const edits: Array<[number, number, string]> = [];
  const flow = (n: typeof ra) => n.flow === true && n.range !== undefined && n.range !== null;
  const lineOf = (pos: number): [number, number] => {
    const start = text.lastIndexOf('\n', pos - 1) + 1;
    const nl = text.indexOf('\n', pos);
    return [start, nl < 0 ? text.length : nl + 1];
  };
  let surgical = flow(rb) && (removedHost ? a.range !== undefined && a.range !== null : flow(ra));
  if (surgical && removedHost) {
    // The entry must sit alone on its line(s): `- { name: …, … } # comment`.
    const [s0] = lineOf(a.range![0]);
    const [, e1] = lineOf(Math.max(a.range![0], a.range![1] - 1));
    const before = text.slice(s0, a.range![0]);
    if (/^\s*-\s*$/.test(before) && hosts.items.length > 1) edits.push([s0, e1, '']);
    else surgical = false;
  } else if (surgical) edits.push([ra.range![0], ra.range![1], `[${keepA.join(', ')}]`]);
  if (surgical) edits.push([rb.range![0], rb.range![1], `[${wantB.join(', ')}]`]);
  if (surgical) {
    let next = text;
    for (const [s0, e0, r] of edits.sort((x, y) => y[0] - x[0]))
      next = next.slice(0, s0) + r + next.slice(e0);
    await writeFileAtomic(file, next);
    return { removedHost };
  }
  rb.items = wantB.map((r) => doc.createNode(r));
  ra.items = keepA.map((r) => doc.createNode(r));
  if (removedHost) hosts.items = hosts.items.filter((h) => h !== a);
  await writeFileAtomic(file, doc.toString());
  return { removedHost };
}
