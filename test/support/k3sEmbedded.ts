/**
 * A stand-in for a K3s server's embedded etcd on an edge host. K3s itself cannot run here, so the
 * real etcd binary runs under a `k3s.service` unit with what K3s lays out: the data dir
 * /var/lib/rancher/k3s/server/db/etcd, its generated `config` there (etcd's --config-file
 * format), and K3s's ECDSA P-256 certificates in /var/lib/rancher/k3s/server/tls/etcd
 * (server-ca, server-client, peer-ca, peer-server-client), made with openssl, not with our PKI.
 * `restartAt()` does what K3s does when it starts with a new node IP: re-issue the node's
 * certificates and rewrite the config for the new address, then restart.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { EdgeHost } from '../../scripts/harness/edgeHosts';

const run = promisify(execFile);
export const K3S_TLS = '/var/lib/rancher/k3s/server/tls/etcd';
export const K3S_DB = '/var/lib/rancher/k3s/server/db/etcd';

const CNF = `[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
`;

async function openssl(cwd: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd });
}

/** K3s's two etcd CAs (server-ca for clients, peer-ca for peers), in `dir`. */
export async function makeK3sEtcdCas(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'openssl.cnf'), CNF);
  for (const ca of ['server-ca', 'peer-ca']) {
    await openssl(dir, [
      'ecparam',
      '-name',
      'prime256v1',
      '-genkey',
      '-noout',
      '-out',
      `${ca}.key`,
    ]);
    await openssl(dir, [
      'req',
      '-x509',
      '-new',
      '-key',
      `${ca}.key`,
      '-subj',
      `/CN=etcd-${ca}@1700000000`,
      '-days',
      '3650',
      '-config',
      'openssl.cnf',
      '-extensions',
      'ca',
      '-out',
      `${ca}.crt`,
    ]);
  }
}

/** A node's server-client and peer-server-client certificates for `address`, as K3s issues them. */
async function issueNode(dir: string, node: string, address: string): Promise<void> {
  const ext = join(dir, `${node}.ext`);
  await writeFile(
    ext,
    [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth,clientAuth',
      `subjectAltName = DNS:localhost,DNS:${node},IP:127.0.0.1,IP:${address}`,
      '',
    ].join('\n'),
  );
  for (const [leaf, ca, cn] of [
    ['server-client', 'server-ca', 'etcd-server'],
    ['peer-server-client', 'peer-ca', 'etcd-peer'],
  ] as const) {
    const key = `${node}-${leaf}.key`;
    await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    await openssl(dir, [
      'req',
      '-new',
      '-key',
      key,
      '-subj',
      `/CN=${cn}`,
      '-config',
      'openssl.cnf',
      '-out',
      `${node}.csr`,
    ]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${node}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '365',
      '-extfile',
      ext,
      '-out',
      `${node}-${leaf}.crt`,
    ]);
  }
}

export interface K3sEtcdNode {
  host: EdgeHost;
  /** K3s names members `<hostname>-<8 hex>`. */
  memberName: string;
}

function config(
  memberName: string,
  address: string,
  initialCluster: string,
  loopback = true,
): string {
  const lo = (port: number) => (loopback ? `https://127.0.0.1:${port},` : '');
  return [
    `advertise-client-urls: https://${address}:2379`,
    'client-transport-security:',
    `  cert-file: ${K3S_TLS}/server-client.crt`,
    '  client-cert-auth: true',
    `  key-file: ${K3S_TLS}/server-client.key`,
    `  trusted-ca-file: ${K3S_TLS}/server-ca.crt`,
    `data-dir: ${K3S_DB}`,
    'election-timeout: 5000',
    'heartbeat-interval: 500',
    `initial-advertise-peer-urls: https://${address}:2380`,
    `initial-cluster: ${initialCluster}`,
    'initial-cluster-state: new',
    `listen-client-urls: ${lo(2379)}https://${address}:2379`,
    `listen-peer-urls: ${lo(2380)}https://${address}:2380`,
    `name: ${memberName}`,
    'peer-transport-security:',
    `  cert-file: ${K3S_TLS}/peer-server-client.crt`,
    '  client-cert-auth: true',
    `  key-file: ${K3S_TLS}/peer-server-client.key`,
    `  trusted-ca-file: ${K3S_TLS}/peer-ca.crt`,
    '',
  ].join('\n');
}

/** Lays out the node's certificates and config for `address` (as K3s does at start). */
async function layOut(
  dir: string,
  n: K3sEtcdNode,
  address: string,
  initialCluster: string,
  loopback = true,
) {
  const root = n.host.root;
  await issueNode(dir, n.memberName, address);
  await mkdir(join(root, K3S_TLS), { recursive: true });
  await mkdir(join(root, K3S_DB), { recursive: true, mode: 0o700 });
  for (const f of ['server-ca.crt', 'peer-ca.crt'])
    await copyFile(join(dir, f), join(root, K3S_TLS, f));
  for (const leaf of ['server-client', 'peer-server-client']) {
    await copyFile(join(dir, `${n.memberName}-${leaf}.crt`), join(root, K3S_TLS, `${leaf}.crt`));
    await writeFile(
      join(root, K3S_TLS, `${leaf}.key`),
      await readFile(join(dir, `${n.memberName}-${leaf}.key`)),
      { mode: 0o600 },
    );
  }
  await writeFile(
    join(root, K3S_DB, 'config'),
    config(n.memberName, address, initialCluster, loopback),
    {
      mode: 0o600,
    },
  );
}

/**
 * Starts the stand-in on every node (one cluster), returns once each unit is active. `loopback:
 * false` leaves 127.0.0.1 out of the listen URLs: hosts sharing this machine's network (the
 * harness's default) cannot each bind 127.0.0.1:2379, as K3s's servers do on their own machines.
 */
export async function startK3sEmbeddedEtcd(
  dir: string,
  nodes: K3sEtcdNode[],
  opts: { loopback?: boolean } = {},
): Promise<void> {
  await makeK3sEtcdCas(dir);
  const initial = nodes.map((n) => `${n.memberName}=https://${n.host.address}:2380`).join(',');
  for (const n of nodes) {
    await layOut(dir, n, n.host.address, initial, opts.loopback ?? true);
    await copyFile('/usr/bin/etcd', join(n.host.root, 'usr/local/bin/etcd'));
    await writeFile(
      join(n.host.root, 'etc/systemd/system/k3s.service'),
      [
        '[Unit]',
        "Description=Stand-in for K3s: only its embedded etcd, with K3s's config and certificates",
        '[Service]',
        `ExecStart=/usr/local/bin/etcd --config-file ${K3S_DB}/config`,
        'Restart=always',
        'RestartSec=1',
        '',
      ].join('\n'),
    );
  }
  await Promise.all(
    nodes.map(async (n) => {
      const r = await n.host.exec('systemctl daemon-reload && systemctl start --no-block k3s');
      if (r.code !== 0) throw new Error(`k3s stand-in on ${n.host.name}: ${r.stderr}`);
    }),
  );
}

/** What K3s does when it starts on a new node IP: its certificates and config follow, restart. */
export async function restartAt(dir: string, n: K3sEtcdNode, address: string): Promise<void> {
  const cfg = await readFile(join(n.host.root, K3S_DB, 'config'), 'utf8');
  const initial = /^initial-cluster: (.*)$/m.exec(cfg)?.[1] ?? '';
  await layOut(dir, n, address, initial);
  const r = await n.host.exec('systemctl restart k3s');
  if (r.code !== 0) throw new Error(`restart k3s on ${n.host.name}: ${r.stderr}`);
}

/** Client TLS files as the article's etcdctl uses them, from this machine's copy. */
export function k3sClientTls(dir: string, memberName: string) {
  return {
    caFile: join(dir, 'server-ca.crt'),
    certFile: join(dir, `${memberName}-server-client.crt`),
    keyFile: join(dir, `${memberName}-server-client.key`),
  };
}
