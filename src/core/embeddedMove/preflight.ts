/**
 * The move's preflight, read only: the source's K3s servers over SSH (K3s's etcd client files
 * read from the first and kept in memory, each member's `endpoint status` through its own
 * loopback over SSH, the K3s token), the target's health, members, version and whether it holds
 * K3s's keys. Nothing is changed; a refusal says why.
 */
import type { Etcd3 } from 'etcd3';
import { K3sEtcdError, errorMessage } from '../errors';
import { createEndpointClient, memberIdToHex, type EtcdTlsPem } from '../etcd/client';
import { clusterSnapshot } from '../etcd/checks';
import { connectionFor, healthyClient } from '../etcd/connection';
import { countRange, prefixEnd } from '../etcd/paginate';
import { backupStamp } from '../format/stamp';
import { clientEndpoints, etcdHosts, k3sServers } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { readK3sEtcdTls } from '../k3sHost/embeddedEtcd';
import { tokenSecret } from '../k3sHost/token';
import { readK3sFacts } from '../k3s/ops';
import { datastoreClientFiles } from '../k3s/server';
import type { TokenStore } from '../k3s/token';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import type { SshSession } from '../ssh/session';
import { tunnel } from '../ssh/tunnel';
import {
  checkMoveShape,
  checkTarget,
  chooseToken,
  planMove,
  type MovePlan,
  type SourceMember,
  type TargetFacts,
} from './plan';

/** The plan and what it needs but never shows: K3s's etcd client TLS and the token. */
export interface PreparedMove {
  plan: MovePlan;
  secrets: { tls: EtcdTlsPem; token: string };
}

/** A source server reached over SSH, with a client on its etcd's loopback through a tunnel. */
export interface SourceLink {
  host: Host;
  session: SshSession;
  client: Etcd3;
  /** The local end of the tunnel (`https://127.0.0.1:<port>`). */
  endpoint: string;
  /** Where the tunnel ends, as the host sees it (`127.0.0.1:2379`, or its address). */
  via: string;
  close(): void;
}

/** Opens `host` over SSH and a client to its etcd's loopback with `tls`. */
export async function openSourceLink(
  source: Cluster,
  host: Host,
  opts: { ssh: SshContext; tls?: EtcdTlsPem; signal?: AbortSignal },
): Promise<SourceLink & { tls: EtcdTlsPem }> {
  let session: SshSession;
  try {
    session = await sshOpener(source, host, opts.ssh)(opts.signal);
  } catch (err) {
    throw new K3sEtcdError(
      'ssh-unreachable',
      `Cannot reach K3s server ${host.name} (${host.address}) over SSH: ${errorMessage(err)}. Every source server must be reachable (its K3s is stopped by the move). Nothing was changed.`,
      { cause: err },
    );
  }
  try {
    const tls = opts.tls ?? (await readK3sEtcdTls(session, host.name, opts.signal));
    // K3s's etcd listens on the node's loopback and its address: the loopback first (the
    // inventory's address may be a NAT or SSH address), else the address, as the host sees it.
    const problems: string[] = [];
    for (const at of ['127.0.0.1', host.address]) {
      const tun = await tunnel(session, at, source.etcd.clientPort);
      const endpoint = `https://127.0.0.1:${tun.port}`;
      const client = await createEndpointClient(endpoint, { tls, timeoutMs: 10_000 });
      try {
        await client.maintenance.status();
      } catch (err) {
        client.close();
        tun.close();
        problems.push(`${at}:${source.etcd.clientPort}: ${errorMessage(err)}`);
        continue;
      }
      return {
        host,
        session,
        client,
        endpoint,
        via: `${at}:${source.etcd.clientPort}`,
        tls,
        close: () => {
          client.close();
          tun.close();
          session.close();
        },
      };
    }
    throw new K3sEtcdError(
      'migrate-source',
      `K3s's etcd on ${host.name} does not answer over SSH (${problems.join('; ')}). Is K3s running there (systemctl status k3s)? The move needs every source member up. Nothing was changed.`,
    );
  } catch (err) {
    session.close();
    throw err;
  }
}

/** One source member's `endpoint status`, through its tunnel. */
async function memberOf(link: SourceLink): Promise<SourceMember> {
  try {
    const s = await link.client.maintenance.status();
    const id = memberIdToHex(s.header.member_id);
    const list = await link.client.cluster.memberList({ linearizable: false });
    const me = list.members.find((m) => memberIdToHex(m.ID) === id);
    return {
      host: link.host.name,
      address: link.host.address,
      member: me?.name || link.host.memberName,
      id,
      version: s.version,
      revision: s.header.revision,
      dbSize: Number(s.dbSize),
      leader: memberIdToHex(s.leader) === id,
    };
  } catch (err) {
    throw new K3sEtcdError(
      'migrate-source',
      `K3s's etcd on ${link.host.name} does not answer its status at ${link.via} (over SSH): ${errorMessage(err)}. Is K3s running there (systemctl status k3s)? The move needs every source member up. Nothing was changed.`,
      { cause: err },
    );
  }
}

/** The target's health, members, version and K3s key counts. */
export async function readTarget(target: Cluster): Promise<TargetFacts> {
  const conn = await connectionFor(target);
  const endpoints = clientEndpoints(target);
  const snap = await clusterSnapshot(endpoints, { tls: conn.tls, timeoutMs: 5000 });
  const healthy = snap.health.length > 0 && snap.health.every((h) => h.health);
  const version = snap.status.find((s) => s.version)?.version ?? target.etcd.version;
  const base = {
    endpoints,
    hosts: etcdHosts(target).map((h) => h.name),
    healthy,
    summary: snap.summary,
    version,
  };
  if (!healthy) return { ...base, registryKeys: 0, bootstrapKeys: 0 };
  const { client } = await healthyClient(target, { timeoutMs: 5000 });
  try {
    const count = (p: string) => countRange(client, Buffer.from(p), prefixEnd(Buffer.from(p)));
    return {
      ...base,
      registryKeys: await count('/registry/'),
      bootstrapKeys: await count('/bootstrap/'),
    };
  } finally {
    client.close();
  }
}

/**
 * Reads everything the move needs and plans it; throws a refusal naming what stops it. Reads
 * only: nothing is stopped or written anywhere.
 */
export async function prepareMove(
  source: Cluster,
  target: Cluster,
  opts: { ssh: SshContext; tokens: TokenStore; now?: Date; signal?: AbortSignal },
): Promise<PreparedMove> {
  checkMoveShape(source, target);
  // The datastore client files K3s will use: missing ones are named before any host is read.
  await datastoreClientFiles(target);
  const targetFacts = await readTarget(target);
  checkTarget(target.name, targetFacts);

  const members: SourceMember[] = [];
  let tls: EtcdTlsPem | undefined;
  let serverToken: string | undefined;
  const servers = k3sServers(source);
  for (const host of etcdHosts(source)) {
    const link = await openSourceLink(source, host, {
      ssh: opts.ssh,
      ...(tls ? { tls } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    try {
      tls = link.tls;
      members.push(await memberOf(link));
      if (!serverToken && servers.some((s) => s.name === host.name)) {
        const facts = await readK3sFacts(link.session, host, opts.signal);
        if (facts.token) serverToken = tokenSecret(facts.token);
      }
    } finally {
      link.close();
    }
  }
  if (!tls)
    throw new K3sEtcdError(
      'migrate-source',
      `Cluster ${source.name} has no host with the role etcd: its K3s servers (roles etcd and k3s-server) are the embedded etcd's members. Nothing was changed.`,
    );
  const twice = members.find((m, i) => members.findIndex((x) => x.id === m.id) !== i);
  if (twice)
    throw new K3sEtcdError(
      'migrate-source',
      `${members
        .filter((m) => m.id === twice.id)
        .map((m) => m.host)
        .join(
          ' and ',
        )} answer as the same etcd member (${twice.id}): check the addresses of ${source.name}'s hosts in k3s-etcd.yaml. Nothing was changed.`,
    );
  const notServers = members.filter((m) => !servers.some((s) => s.name === m.host));
  if (notServers.length > 0)
    throw new K3sEtcdError(
      'migrate-source',
      `${notServers.map((m) => m.host).join(', ')} of ${source.name} run an embedded etcd member but have no k3s-server role: every member of K3s's embedded etcd is a K3s server (give them the role k3s-server). Nothing was changed.`,
    );
  const [storedTarget, storedSource] = await Promise.all([
    opts.tokens.get(target.name),
    opts.tokens.get(source.name),
  ]);
  const token = chooseToken(target.name, {
    ...(serverToken ? { server: serverToken } : {}),
    ...(storedTarget ? { storedTarget } : {}),
    ...(storedSource ? { storedSource } : {}),
  });
  const plan = planMove({
    source,
    target,
    members,
    targetFacts,
    token: token.source,
    stamp: backupStamp(opts.now ?? new Date()),
  });
  return { plan, secrets: { tls, token: token.token } };
}
