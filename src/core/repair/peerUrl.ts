/**
 * "Fix Peer URL after IP Change": the article's last failure, repaired and verified. A host's
 * IP changed; etcd keeps its old peer URL, its certificates lack the new IP, its env file still
 * listens on the old one. Detect what is stale, then, one step at a time: quorum check,
 * re-issue the member's certificates with the new IP (same CA), `member update` through a
 * healthy member (a single member: through itself, over an SSH tunnel to its loopback), rewrite
 * the env file and restart etcd (the provisioning plan), wait until healthy with the new URL
 * in the member list, and update the inventory.
 *
 * K3s's embedded etcd (datastore k3s-embedded-etcd): K3s owns the certificates and the etcd
 * config and regenerates both for the new address when it restarts, so the repair is the
 * article's own `member update`, authenticated with K3s's etcd client certificate read from the
 * host over SSH (kept in memory), then the inventory, then "restart K3s" for the person to do.
 *
 * When this window runs on the member's host (`here`), that host's reads and steps run here, in
 * this window's terminal as root through sudo, and its loopback is reached directly: nothing goes
 * over SSH to it (its sshd may be the thing that moved).
 */
import { isIP } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { K3sEtcdError, errorMessage } from '../errors';
import { clusterSnapshot } from '../etcd/checks';
import { createEndpointClient, memberIdFromHex, type EtcdTls } from '../etcd/client';
import { connectionFor } from '../etcd/connection';
import { listMembers, toMember, type EtcdMember } from '../etcd/members';
import { quorumDuringRestart } from '../etcd/quorum';
import { isIpOrHostname } from '../inventory/addressFormat';
import { setHostAddress } from '../inventory/edit';
import type { Cluster, Datastore, Host } from '../inventory/types';
import { K3S_ETCD_CLIENT_FILES, readK3sEtcdConfig, readK3sEtcdTls } from '../k3sHost/embeddedEtcd';
import { repointK3sServers } from '../k3s/ops';
import {
  k3sServers as allK3sServers,
  clientUrl,
  etcdHosts,
  peerUrl,
  selectHosts,
} from '../inventory/select';
import { parseCertificate, sansOf } from '../pki/inspect';
import { reissueMember } from '../pki/set';
import { shellQuote } from '../ssh/quote';
import { ENV_FILE } from '../etcd/memberHost';
import { provisionEtcd } from '../provision/provision';
import type { SshContext } from '../ssh/hostSession';
import type { HostTransport, RunHooks } from '../plan/runner';
import type { HereHost } from '../thisHost/terminal';
import { openMemberHost } from './memberHost';

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
  /** The member's host is the one this window runs on: its steps run here, not over SSH. */
  local?: boolean;
  datastore: Datastore;
  /** The repair as it will run: steps, files, restarts (what the confirmation shows). */
  steps: string[];
}

/**
 * What both front ends show of a diagnosis: each stale item (`what: now → want`) and the
 * repair's numbered steps, worded once here.
 */
export function repairPlanLines(d: PeerUrlDiagnosis): { stale: string[]; steps: string[] } {
  return {
    stale: d.stale.map((s) => `${s.what}: ${s.now} → ${s.want}`),
    steps: d.steps.map((s, i) => `${i + 1}. ${s}`),
  };
}

export interface PeerUrlRepair {
  /** The member list names the new peer URL. */
  updated: boolean;
  /** The member answers healthy at its new address. */
  healthy: boolean;
  summary: string;
  /** What the person still has to do (K3s: restart it), if anything. */
  next?: string;
}

/** The cluster as it will be: the host at its new address. */
export function withAddress(cluster: Cluster, hostName: string, address: string): Cluster {
  return {
    ...cluster,
    hosts: cluster.hosts.map((h) => (h.name === hostName ? { ...h, address } : h)),
  };
}

const isCandidate = (a: string) => !/^(127\.|::1$|fe80:|169\.254\.)/i.test(a);

/**
 * The client TLS for this cluster: the inventory's or the generated admin certificate; for K3s's
 * embedded etcd without inventory TLS, K3s's own client certificate read from `session`'s host.
 */
async function clusterTls(
  cluster: Cluster,
  session: Pick<HostTransport, 'exec'>,
  host: Host,
  signal?: AbortSignal,
): Promise<EtcdTls> {
  if (cluster.datastore === 'k3s-embedded-etcd' && !cluster.etcd.tls)
    return readK3sEtcdTls(session, host.name, signal);
  return (await connectionFor(cluster)).tls;
}

/** The member list from the first endpoint that answers, and which one it was. */
async function memberListVia(
  tls: EtcdTls,
  endpoints: string[],
): Promise<{ members: EtcdMember[]; via: string } | undefined> {
  for (const ep of endpoints) {
    try {
      return { members: await listMembers([ep], { tls, timeoutMs: 3000 }), via: ep };
    } catch {
      // next
    }
  }
  return undefined;
}

/**
 * Reads everything that could be stale and says what is. `here`: this window runs on one of the
 * hosts; the member's host is then read here (root through sudo in this window's terminal).
 */
export async function diagnosePeerUrl(
  cluster: Cluster,
  hostName: string,
  opts: { newAddress?: string; ssh: SshContext; signal?: AbortSignal; here?: HereHost },
): Promise<PeerUrlDiagnosis> {
  const [host] = selectHosts(cluster, [hostName]);
  if (!host)
    throw new K3sEtcdError('usage', `No etcd member "${hostName}" in cluster ${cluster.name}.`);
  // It goes into URLs, certificates, the env file, scripts and k3s-etcd.yaml.
  if (opts.newAddress !== undefined && !isIpOrHostname(opts.newAddress)) {
    throw new K3sEtcdError(
      'usage',
      `${JSON.stringify(opts.newAddress)} is not an IP address or host name: give the new address of ${host.name} (--address NEW_ADDRESS). Nothing was changed.`,
    );
  }
  const owner = opts.newAddress
    ? cluster.hosts.find((h) => h.name !== host.name && h.address === opts.newAddress)
    : undefined;
  if (owner) {
    throw new K3sEtcdError(
      'provision-refused',
      `${opts.newAddress} is the address of ${owner.name} in k3s-etcd.yaml: check the new address of ${host.name}. Nothing was changed.`,
    );
  }
  const embedded = cluster.datastore === 'k3s-embedded-etcd';
  const sshHost: Host = opts.newAddress ? { ...host, address: opts.newAddress } : host;
  const access = await openMemberHost(cluster, sshHost, {
    ssh: opts.ssh,
    ...(opts.here ? { here: opts.here } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    hint: opts.newAddress
      ? ''
      : ' If its address changed, give the new one (--address NEW_ADDRESS).',
  });
  const t = access.t;
  try {
    const addrs = await t.exec(
      "ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1",
      opts.signal ? { signal: opts.signal } : {},
    );
    // The host's words are input: only what parses as an IP address is taken.
    const hostAddresses = addrs.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((a) => isIP(a) !== 0);
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
    const tls = await clusterTls(cluster, t, host, opts.signal);
    // The URLs etcd is started with: our env file, or the config K3s generates.
    let urls: Record<string, string>;
    let urlsFile: string;
    if (embedded) {
      urls = (await readK3sEtcdConfig(t, opts.signal)) ?? {};
      urlsFile = 'K3s etcd config';
    } else {
      const env = await t.exec(`cat ${ENV_FILE}`, {
        sudo: true,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      urls = Object.fromEntries(
        env.stdout
          .split('\n')
          .map((l) => /^(ETCD_[A-Z_]+_URLS)=(.*)$/.exec(l))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => [m[1] as string, m[2] as string]),
      );
      urlsFile = ENV_FILE;
    }
    const next = withAddress(cluster, host.name, newAddress);
    const nextHost = next.hosts.find((h) => h.name === host.name) as Host;
    const newPeerUrl = peerUrl(next, nextHost);
    const others = etcdHosts(cluster).filter((h) => h.name !== host.name);
    const single = others.length === 0;

    // The member list through a member that answers; a single member through its own loopback.
    // Another member first; then the member itself at its old URL (still up on the old network
    // before a reboot); then through its loopback over SSH.
    let list = await memberListVia(tls, [
      ...others.map((h) => clientUrl(cluster, h)),
      clientUrl(cluster, host),
    ]);
    if (!list) {
      const lo = await access.loopback('127.0.0.1', cluster.etcd.clientPort);
      try {
        list = await memberListVia(tls, [lo.endpoint]);
        if (list) list.via = `${host.name}'s loopback ${access.local ? 'here' : 'over SSH'}`;
      } finally {
        lo.close();
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
    for (const [k, v] of Object.entries(urls)) {
      if (v.includes(`//${host.address}:`) && host.address !== newAddress) {
        stale.push({
          what: `${urlsFile} ${k}`,
          now: v,
          want: embedded
            ? `${newAddress} (K3s rewrites it when it restarts)`
            : v.split(`//${host.address}:`).join(`//${newAddress}:`),
        });
      }
    }
    // K3s issues its own etcd certificates (and re-issues them for a new address): not ours.
    if (!embedded) {
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
      const voters = list.members.filter((m) => !m.isLearner);
      const otherUrls = voters.filter((m) => m !== member).flatMap((m) => m.clientUrls.slice(0, 1));
      const snap = await clusterSnapshot(otherUrls, { tls, timeoutMs: 3000 });
      const healthyOthers = snap.health.filter((h) => h.health).length;
      quorum = quorumDuringRestart(voters.length, healthyOthers, host.memberName);
    } else if (!list) {
      quorum = {
        ok: false,
        why: `no member of the cluster answered (not even through ${access.local ? 'its loopback here' : 'the SSH tunnel'})`,
      };
    }
    const d: Omit<PeerUrlDiagnosis, 'steps'> = {
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
      ...(access.local ? { local: true } : {}),
      datastore: cluster.datastore,
    };
    return { ...d, steps: repairSteps(cluster, d) };
  } finally {
    access.close();
  }
}

/** K3s servers whose datastore-endpoint may name the old client URL (external etcd only). */
function k3sServers(cluster: Cluster): Host[] {
  return cluster.datastore === 'external-etcd' ? allK3sServers(cluster) : [];
}

/** The repair as a numbered plan: steps, files, restarts, in the order `fixPeerUrl` runs them. */
export function repairSteps(cluster: Cluster, d: Omit<PeerUrlDiagnosis, 'steps'>): string[] {
  const id = d.memberId ?? d.member;
  const update = `member update ${id} --peer-urls=${d.newPeerUrl}`;
  const steps = [`quorum check: ${d.quorum.why}`];
  const on = d.local
    ? `on ${d.host} (here, as root through sudo in this window's terminal)`
    : `on ${d.host}`;
  if (d.datastore === 'k3s-embedded-etcd') {
    steps.push(
      `${update} through ${d.single ? `the member itself (${d.local ? `here, on ${d.host}'s 127.0.0.1:${cluster.etcd.clientPort}` : `SSH tunnel to ${d.host}'s 127.0.0.1:${cluster.etcd.clientPort}`})` : 'a healthy member'}, with K3s's etcd client certificate read from ${d.host} (${K3S_ETCD_CLIENT_FILES.cert}, kept in memory)`,
      `check that the member list names ${d.newPeerUrl}`,
      `k3s-etcd.yaml: ${d.host} address ${d.oldAddress} → ${d.newAddress}`,
      `then restart K3s on ${d.host} yourself (sudo systemctl restart k3s): K3s rewrites its etcd config and certificates for ${d.newAddress}; they are not touched here`,
    );
    return steps;
  }
  steps.push(
    `re-issue ${d.member}'s server and peer certificates with ${d.newAddress} in the SANs (same CA): ${cluster.pki.dir}/${d.member}/`,
  );
  if (!d.single) steps.push(`${update} through a healthy member`);
  steps.push(
    `${on}: upload the certificates to /etc/etcd/pki, rewrite ${ENV_FILE} (listen/advertise URLs on ${d.newAddress}), daemon-reload, restart etcd${d.single ? '' : ` through the rolling engine (the other voters must be healthy; if ${d.member} leads, it hands its leadership to a caught-up member first; its previous files are put back if etcd fails on the new ones)`}`,
  );
  if (d.single)
    steps.push(
      `${update} through the member itself, ${d.local ? `here on ${d.host}` : `over an SSH tunnel from ${d.host}`}`,
    );
  steps.push(
    `wait until ${d.member} is healthy and the member list names ${d.newPeerUrl}`,
    `k3s-etcd.yaml: ${d.host} address ${d.oldAddress} → ${d.newAddress}`,
  );
  const servers = k3sServers(cluster);
  if (servers.length > 0) {
    steps.push(
      `K3s servers ${servers.map((h) => h.name).join(', ')}: where config.yaml's datastore-endpoint names https://${d.oldAddress}:${cluster.etcd.clientPort}, rewrite it to https://${d.newAddress}:${cluster.etcd.clientPort} (the old file kept beside it), restart K3s and wait until Ready, one server at a time`,
    );
  }
  return steps;
}

/** `member update` of `d`'s member through `endpoint`; returns the member list after it. */
async function memberUpdate(
  d: PeerUrlDiagnosis,
  endpoint: string,
  tls: EtcdTls,
  say: (l: string) => void,
): Promise<EtcdMember[]> {
  const c = await createEndpointClient(endpoint, { tls, timeoutMs: 5000 });
  try {
    const id =
      d.memberId ??
      (await c.cluster.memberList({})).members.map(toMember).find((m) => m.name === d.member)?.id;
    if (!id)
      throw new K3sEtcdError('provision-refused', `member ${d.member} is not in the member list`);
    await c.cluster.memberUpdate({ ID: memberIdFromHex(id), peerURLs: [d.newPeerUrl] });
    say(`member update ${id} --peer-urls=${d.newPeerUrl}: done through ${endpoint}`);
    return (await c.cluster.memberList({})).members.map(toMember);
  } finally {
    c.close();
  }
}

/** Tries `endpoints` in order; the first that takes the update wins. */
async function updateThroughAny(
  d: PeerUrlDiagnosis,
  endpoints: string[],
  tls: EtcdTls,
  say: (l: string) => void,
): Promise<{ endpoint: string; members: EtcdMember[] } | undefined> {
  for (const endpoint of endpoints) {
    try {
      return { endpoint, members: await memberUpdate(d, endpoint, tls, say) };
    } catch (err) {
      say(`  ${endpoint}: ${errorMessage(err)}`);
    }
  }
  return undefined;
}

function hostOpts(opts: FixOptions): Parameters<typeof openMemberHost>[2] {
  return {
    ssh: opts.ssh,
    ...(opts.here ? { here: opts.here } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
}

function refuseUnlessNeeded(d: PeerUrlDiagnosis): void {
  if (!isIpOrHostname(d.newAddress))
    throw new K3sEtcdError(
      'usage',
      `${JSON.stringify(d.newAddress)} is not an IP address or host name: nothing was changed.`,
    );
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
}

export type FixOptions = RunHooks & {
  ssh: SshContext;
  inventoryFile?: string;
  /** This window runs on one of the hosts: that host's steps run here (its terminal, sudo). */
  here?: HereHost;
};

/** Runs the repair described by `d`; every step logged through `onLine`. */
export async function fixPeerUrl(
  cluster: Cluster,
  d: PeerUrlDiagnosis,
  opts: FixOptions,
): Promise<PeerUrlRepair> {
  refuseUnlessNeeded(d);
  if (d.datastore === 'k3s-embedded-etcd') return fixEmbedded(cluster, d, opts);
  const say = (l: string) => opts.onLine?.(d.host, l);
  const next = withAddress(cluster, d.host, d.newAddress);
  const tls = (await connectionFor(cluster)).tls;
  say(`1. re-issue ${d.member}'s server and peer certificates for ${d.newAddress} (same CA)`);
  // The person confirmed the repair, which names these certificates: replacing them is agreed.
  await reissueMember(next, d.member, [], { confirmReplace: async () => true });

  if (!d.single) {
    say('2. member update through a healthy member');
    const others = etcdHosts(cluster).filter((h) => h.name !== d.host);
    const done = await updateThroughAny(
      d,
      others.map((h) => clientUrl(cluster, h)),
      tls,
      say,
    );
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
    ...(opts.here ? { here: opts.here } : {}),
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
    const host = next.hosts.find((h) => h.name === d.host) as Host;
    const access = await openMemberHost(next, host, hostOpts(opts));
    say(
      `3. member update through the member itself, ${access.local ? 'here on its host' : 'over an SSH tunnel from its host'}`,
    );
    try {
      const lo = await access.loopback(d.newAddress, cluster.etcd.clientPort);
      try {
        await memberUpdate(d, lo.endpoint, tls, say);
      } finally {
        lo.close();
      }
    } finally {
      access.close();
    }
  }

  if (opts.inventoryFile) {
    const old = await setHostAddress(opts.inventoryFile, cluster.name, d.host, d.newAddress);
    say(`4. k3s-etcd.yaml: ${d.host} address ${old} → ${d.newAddress}`);
  }
  let todo: string | undefined;
  if (k3sServers(next).length > 0) {
    const from = clientUrl(cluster, cluster.hosts.find((h) => h.name === d.host) as Host);
    const to = clientUrl(next, next.hosts.find((h) => h.name === d.host) as Host);
    say(`5. K3s servers: datastore-endpoint ${from} → ${to}, one server at a time`);
    const runs = await repointK3sServers(next, {
      from,
      to,
      ssh: opts.ssh,
      ...(opts.here ? { here: opts.here } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onLine ? { onLine: opts.onLine } : {}),
    });
    const failed = runs.filter((r) => r.status === 'failed' || r.status === 'cancelled');
    for (const r of runs) say(`  ${r.host}: ${r.status}${r.error ? ` (${r.error.message})` : ''}`);
    if (failed.length > 0)
      todo = `K3s servers ${failed.map((r) => r.host).join(', ')} still need their datastore-endpoint to name ${to} instead of ${from} (re-run the repair, or k3s-etcd k3s install, once they are reachable); then restart K3s there one server at a time.`;
  }
  if (todo) say(todo);
  return {
    updated: true,
    healthy: run.healthy === true,
    summary: run.healthSummary ?? '',
    ...(todo ? { next: todo } : {}),
  };
}

/**
 * K3s's embedded etcd: `member update` with K3s's own etcd client certificate, through a healthy
 * member or the member's loopback over SSH; K3s's files are left to K3s.
 */
async function fixEmbedded(
  cluster: Cluster,
  d: PeerUrlDiagnosis,
  opts: FixOptions,
): Promise<PeerUrlRepair> {
  const say = (l: string) => opts.onLine?.(d.host, l);
  const next = withAddress(cluster, d.host, d.newAddress);
  const host = next.hosts.find((h) => h.name === d.host) as Host;
  const access = await openMemberHost(next, host, hostOpts(opts));
  let done: { endpoint: string; members: EtcdMember[] } | undefined;
  let healthy = false;
  try {
    const tls = await clusterTls(cluster, access.t, host, opts.signal);
    say(
      `1. member update with K3s's etcd client certificate from ${d.host} (${'ca' in tls ? 'kept in memory' : 'the inventory TLS files'})`,
    );
    const others = etcdHosts(cluster)
      .filter((h) => h.name !== d.host)
      .map((h) => clientUrl(cluster, h));
    done = await updateThroughAny(d, others, tls, say);
    const lo = await access.loopback('127.0.0.1', cluster.etcd.clientPort);
    try {
      done ??= await updateThroughAny(d, [lo.endpoint], tls, say);
      if (!done) {
        throw new K3sEtcdError(
          'etcd-unreachable',
          `No member took the member update (not even ${d.host} itself on 127.0.0.1:${cluster.etcd.clientPort}${access.local ? '' : ' over SSH'}): is K3s running there (systemctl status k3s)? Nothing was changed.`,
        );
      }
      const snap = await clusterSnapshot([lo.endpoint], { tls, timeoutMs: 3000 });
      healthy = snap.health.every((h) => h.health);
    } finally {
      lo.close();
    }
  } finally {
    access.close();
  }
  const named = done.members.find((m) => m.peerUrls.includes(d.newPeerUrl));
  say(
    `2. member list: ${named ? `${named.name || named.id} at ${d.newPeerUrl}` : `nobody at ${d.newPeerUrl}`}`,
  );
  if (!named) {
    throw new K3sEtcdError(
      'provision-step-failed',
      `The member update returned but the member list does not name ${d.newPeerUrl}: re-run the repair.`,
    );
  }
  if (opts.inventoryFile) {
    const old = await setHostAddress(opts.inventoryFile, cluster.name, d.host, d.newAddress);
    say(`3. k3s-etcd.yaml: ${d.host} address ${old} → ${d.newAddress}`);
  }
  const restart = `Restart K3s on ${d.host} now (sudo systemctl restart k3s): K3s rewrites its etcd config and certificates for ${d.newAddress}. Other K3s servers: one at a time, if they name ${d.oldAddress}.`;
  say(restart);
  return {
    updated: true,
    healthy,
    summary: `member list names ${d.newPeerUrl}; ${d.member} ${healthy ? 'answers healthy on its loopback' : 'is not healthy yet'}`,
    next: restart,
  };
}
