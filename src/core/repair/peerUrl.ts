/**
 * "Fix peer URL after IP change": the article's last failure, repaired and verified. A host's
 * IP changed; etcd keeps its old peer URL, its certificates lack the new IP, its env file still
 * listens on the old one. Detect what is stale, then, one step at a time: quorum check,
 * re-issue the member's certificates with the new IP (same CA), `member update` through a
 * healthy member (a single member: through itself, over an SSH tunnel to its loopback), rewrite
 * the env file and restart etcd (the provisioning plan), wait until healthy with the new URL
 * in the member list, and update the inventory.
 */
import { createServer, type Server } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { K3sEtcdError, errorMessage } from '../errors';
import { clusterSnapshot } from '../etcd/checks';
import { createEndpointClient, memberIdFromHex } from '../etcd/client';
import { connectionFor } from '../etcd/connection';
import { listMembers, toMember, type EtcdMember } from '../etcd/members';
import { setHostAddress } from '../inventory/edit';
import type { Cluster, Host } from '../inventory/types';
import { clientUrl, etcdHosts, peerUrl } from '../inventory/urls';
import { parseCertificate, sansOf } from '../pki/inspect';
import { reissueMember } from '../pki/set';
import type { SshSession } from '../ssh/connection';
import { shellQuote } from '../ssh/quote';
import { ENV_FILE } from '../provision/etcd';
import { provisionEtcd, selectHosts, sshOpener, type SshContext } from '../provision/etcdOps';
import type { RunHooks } from '../provision/runner';

export interface StaleItem {
  what: string;
  now: string;
  want: string;
}

export interface PeerUrlDiagnosis {
  cluster: string;
  host: string;
  member: string;
  memberId?: string;
  oldAddress: string;
  newAddress: string;
  newPeerUrl: string;
  /** Addresses the host has now. */
  hostAddresses: string[];
  stale: StaleItem[];
  /** How the member list was read. */
  via: string;
  quorum: { ok: boolean; why: string };
  single: boolean;
}

/** The cluster as it will be: the host at its new address. */
export function withAddress(cluster: Cluster, hostName: string, address: string): Cluster {
  return {
    ...cluster,
    hosts: cluster.hosts.map((h) => (h.name === hostName ? { ...h, address } : h)),
  };
}

const isCandidate = (a: string) => !/^(127\.|::1$|fe80:|169\.254\.)/i.test(a);

/** A local TCP port that forwards to `host:port` as seen from the SSH host (for etcd3 over a tunnel). */
export async function tunnel(
  session: SshSession,
  host: string,
  port: number,
): Promise<{ port: number; close(): void }> {
  const server: Server = createServer((sock) => {
    session.forwardOut(host, port).then(
      (remote) => {
        sock.pipe(remote).pipe(sock);
        remote.on('error', () => sock.destroy());
        sock.on('error', () => remote.destroy());
      },
      () => sock.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    close: () => server.close(),
  };
}

/** The member list from the first endpoint that answers, and which one it was. */
async function memberListVia(
  cluster: Cluster,
  endpoints: string[],
): Promise<{ members: EtcdMember[]; via: string } | undefined> {
  const { tls } = await connectionFor(cluster);
  for (const ep of endpoints) {
    try {
      return { members: await listMembers([ep], { tls, timeoutMs: 3000 }), via: ep };
    } catch {
      // next
    }
  }
  return undefined;
}

/** Reads everything that could be stale and says what is. */
export async function diagnosePeerUrl(
  cluster: Cluster,
  hostName: string,
  opts: { newAddress?: string; ssh: SshContext; signal?: AbortSignal },
): Promise<PeerUrlDiagnosis> {
  const [host] = selectHosts(cluster, [hostName]);
  if (!host)
    throw new K3sEtcdError('usage', `No etcd member "${hostName}" in cluster ${cluster.name}.`);
  const sshHost: Host = opts.newAddress ? { ...host, address: opts.newAddress } : host;
  let t: SshSession;
  try {
    t = (await sshOpener(cluster, sshHost, opts.ssh)(opts.signal)) as SshSession;
  } catch (err) {
    throw new K3sEtcdError(
      (err as K3sEtcdError).code ?? 'ssh-unreachable',
      `Cannot reach ${host.name} at ${sshHost.address} over SSH: ${errorMessage(err)}${opts.newAddress ? '' : ' If its address changed, give the new one (--address NEW_ADDRESS).'}`,
      { cause: err },
    );
  }
  try {
    const addrs = await t.exec(
      "ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1",
      opts.signal ? { signal: opts.signal } : {},
    );
    const hostAddresses = addrs.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
    let newAddress = opts.newAddress;
    if (!newAddress) {
      // Still its address ("local" route, loopback ranges included)? Then nothing moved.
      const route = await t.exec(`ip route get ${shellQuote(host.address)} 2>/dev/null`);
      const candidates = hostAddresses.filter(isCandidate);
      if (/^local /.test(route.stdout)) newAddress = host.address;
      else if (candidates.length === 1) newAddress = candidates[0] as string;
      else {
        throw new K3sEtcdError(
          'usage',
          `${host.name} no longer has ${host.address} and has ${candidates.length === 0 ? 'no other usable address' : `several addresses (${candidates.join(', ')})`}: give the new one with --address NEW_ADDRESS.`,
        );
      }
    }
    const env = await t.exec(`cat ${ENV_FILE}`, {
      sudo: true,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const envLines = Object.fromEntries(
      env.stdout
        .split('\n')
        .map((l) => /^(ETCD_[A-Z_]+)=(.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1] as string, m[2] as string]),
    );
    const next = withAddress(cluster, host.name, newAddress);
    const nextHost = next.hosts.find((h) => h.name === host.name) as Host;
    const newPeerUrl = peerUrl(next, nextHost);
    const others = etcdHosts(cluster).filter((h) => h.name !== host.name);
    const single = others.length === 0;

    // The member list through a member that answers; a single member through its own loopback.
    // Another member first; then the member itself at its old URL (still up on the old network
    // before a reboot); then through its loopback over SSH.
    let list = await memberListVia(cluster, [
      ...others.map((h) => clientUrl(cluster, h)),
      clientUrl(cluster, host),
    ]);
    if (!list) {
      const tun = await tunnel(t, '127.0.0.1', cluster.etcd.clientPort);
      try {
        list = await memberListVia(cluster, [`https://127.0.0.1:${tun.port}`]);
        if (list) list.via = `${host.name}'s loopback over SSH`;
      } finally {
        tun.close();
      }
    }
    const oldPeer = peerUrl(cluster, host);
    const member = list?.members.find(
      (m) => m.name === host.memberName || m.peerUrls.includes(oldPeer),
    );
    const clash = list?.members.find((m) => m !== member && m.peerUrls.includes(newPeerUrl));
    if (clash) {
      throw new K3sEtcdError(
        'provision-refused',
        `${newPeerUrl} already belongs to member ${clash.name || clash.id}: check the new address of ${host.name}.`,
      );
    }

    const stale: StaleItem[] = [];
    if (member && !member.peerUrls.includes(newPeerUrl)) {
      stale.push({
        what: `member ${member.id} peer URL (member list)`,
        now: member.peerUrls.join(','),
        want: newPeerUrl,
      });
    }
    for (const k of [
      'ETCD_LISTEN_PEER_URLS',
      'ETCD_ADVERTISE_CLIENT_URLS',
      'ETCD_LISTEN_CLIENT_URLS',
    ]) {
      const v = envLines[k];
      if (v && v.includes(`//${host.address}:`) && host.address !== newAddress) {
        stale.push({
          what: `${ENV_FILE} ${k}`,
          now: v,
          want: v.split(`//${host.address}:`).join(`//${newAddress}:`),
        });
      }
    }
    try {
      const cert = parseCertificate(
        await readFile(join(cluster.pki.dir, host.memberName, 'server.pem'), 'utf8'),
      );
      const sans = sansOf(cert);
      if (!sans.includes(newAddress.toLowerCase())) {
        stale.push({
          what: `certificate SANs of ${host.memberName}`,
          now: sans.join(','),
          want: `…,${newAddress}`,
        });
      }
    } catch {
      stale.push({
        what: `certificates of ${host.memberName}`,
        now: 'missing',
        want: `issued for ${newAddress}`,
      });
    }
    if (host.address !== newAddress)
      stale.push({
        what: `k3s-etcd.yaml address of ${host.name}`,
        now: host.address,
        want: newAddress,
      });

    // Quorum while this member restarts: the other voters that answer must be a quorum.
    let quorum = { ok: true, why: 'a single-member cluster: repaired through itself' };
    if (!single && list) {
      const conn = await connectionFor(cluster);
      const voters = list.members.filter((m) => !m.isLearner);
      const otherUrls = voters.filter((m) => m !== member).flatMap((m) => m.clientUrls.slice(0, 1));
      const snap = await clusterSnapshot(otherUrls, { tls: conn.tls, timeoutMs: 3000 });
      const healthyOthers = snap.health.filter((h) => h.health).length;
      const need = Math.floor(voters.length / 2) + 1;
      quorum =
        healthyOthers >= need
          ? {
              ok: true,
              why: `${healthyOthers} of the other ${voters.length - 1} members are healthy (quorum ${need})`,
            }
          : {
              ok: false,
              why: `only ${healthyOthers} of the other ${voters.length - 1} members are healthy (quorum ${need}): restarting ${host.memberName} would leave the cluster without quorum`,
            };
    } else if (!list) {
      quorum = {
        ok: false,
        why: 'no member of the cluster answered (not even through the SSH tunnel)',
      };
    }
    return {
      cluster: cluster.name,
      host: host.name,
      member: host.memberName,
      ...(member ? { memberId: member.id } : {}),
      oldAddress: host.address,
      newAddress,
      newPeerUrl,
      hostAddresses,
      stale,
      via: list?.via ?? 'nothing answered',
      quorum,
      single,
    };
  } finally {
    t.close();
  }
}

/** Runs the repair described by `d`; every step logged through `onLine`. */
export async function fixPeerUrl(
  cluster: Cluster,
  d: PeerUrlDiagnosis,
  opts: RunHooks & { ssh: SshContext; inventoryFile?: string },
): Promise<{ healthy: boolean; summary: string }> {
  const say = (l: string) => opts.onLine?.(d.host, l);
  if (d.stale.length === 0)
    throw new K3sEtcdError(
      'provision-refused',
      `Nothing is stale for ${d.member}: no repair needed.`,
    );
  if (!d.quorum.ok) {
    throw new K3sEtcdError(
      'provision-refused',
      `Repairing ${d.member} is refused: ${d.quorum.why}. Bring the other members back first (or, as a last resort, restore from a snapshot).`,
    );
  }
  const next = withAddress(cluster, d.host, d.newAddress);
  say(`1. re-issue ${d.member}'s server and peer certificates for ${d.newAddress} (same CA)`);
  // The person confirmed the repair, which names these certificates: replacing them is agreed.
  await reissueMember(next, d.member, [], { confirmReplace: async () => true });

  const update = async (endpoint: string) => {
    const conn = await connectionFor(cluster);
    const c = await createEndpointClient(endpoint, { tls: conn.tls, timeoutMs: 5000 });
    try {
      const id =
        d.memberId ??
        (await c.cluster.memberList({})).members.map(toMember).find((m) => m.name === d.member)?.id;
      if (!id)
        throw new K3sEtcdError('provision-refused', `member ${d.member} is not in the member list`);
      await c.cluster.memberUpdate({ ID: memberIdFromHex(id), peerURLs: [d.newPeerUrl] });
      say(`member update ${id} --peer-urls=${d.newPeerUrl}: done through ${endpoint}`);
    } finally {
      c.close();
    }
  };

  if (!d.single) {
    say('2. member update through a healthy member');
    const others = etcdHosts(cluster).filter((h) => h.name !== d.host);
    let done = false;
    for (const h of others) {
      try {
        await update(clientUrl(cluster, h));
        done = true;
        break;
      } catch (err) {
        say(`  ${clientUrl(cluster, h)}: ${errorMessage(err)}`);
      }
    }
    if (!done)
      throw new K3sEtcdError(
        'etcd-unreachable',
        'No healthy member accepted the member update: nothing else was changed (the new certificates are in the workspace).',
      );
  }

  say(`${d.single ? 2 : 3}. rewrite ${ENV_FILE} and the certificates on ${d.host}, restart etcd`);
  const run = await provisionEtcd(next, {
    dryRun: false,
    ssh: opts.ssh,
    hosts: [d.host],
    skipMembershipCheck: true,
    rewriteInitial: { from: d.oldAddress, to: d.newAddress },
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
  });
  const r = run.runs[0];
  if (!r || r.status === 'failed' || r.status === 'cancelled') {
    throw new K3sEtcdError(
      'provision-step-failed',
      `${r?.error?.message ?? 'the host step failed'} (the member list already names ${d.newPeerUrl}; re-run the repair once the host is fixed)`,
    );
  }

  if (d.single) {
    // Through the host: from there the member answers at its new address (TLS still checks
    // 127.0.0.1, which every member certificate carries, since we connect to a local port).
    say('3. member update through the member itself, over an SSH tunnel from its host');
    const host = next.hosts.find((h) => h.name === d.host) as Host;
    const t = (await sshOpener(next, host, opts.ssh)(opts.signal)) as SshSession;
    try {
      const tun = await tunnel(t, d.newAddress, cluster.etcd.clientPort);
      try {
        await update(`https://127.0.0.1:${tun.port}`);
      } finally {
        tun.close();
      }
    } finally {
      t.close();
    }
  }

  if (opts.inventoryFile) {
    const old = await setHostAddress(opts.inventoryFile, cluster.name, d.host, d.newAddress);
    say(`4. k3s-etcd.yaml: ${d.host} address ${old} → ${d.newAddress}`);
  }
  const servers = next.hosts.filter((h) => h.roles.includes('k3s-server'));
  if (servers.length > 0) {
    say(
      `K3s servers (${servers.map((h) => h.name).join(', ')}): their datastore-endpoint must name ${clientUrl(next, next.hosts.find((h) => h.name === d.host) as Host)} instead of https://${d.oldAddress}:${cluster.etcd.clientPort}; restart K3s one server at a time.`,
    );
  }
  return { healthy: run.healthy === true, summary: run.healthSummary ?? '' };
}
