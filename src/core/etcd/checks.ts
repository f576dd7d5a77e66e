/**
 * `etcdctl endpoint health`, `endpoint status` and `member list`, per member, in one pass: one
 * client per endpoint, retries off, deadlines on, every endpoint in parallel, so a dead member
 * costs one timeout and no more. The calls go through `rpc.ts` (gRPC over Node's HTTP/2, no
 * etcd3, no .proto parsing): the editor's first refresh and the CLI's one-shot commands start fast.
 */
import { throwIfAborted } from '../errors';
import { memberIdToHex, DEFAULT_TIMEOUT_MS, type EtcdTls } from './client';
import { openRpcs, type EtcdRpc, type RpcOptions } from './rpc';
import {
  humanBytes,
  type ClusterSnapshot,
  type EtcdMember,
  type HealthRow,
  type MaintenanceRun,
  type StatusRow,
} from '../../shared/etcdTypes';

export { humanBytes, type ClusterSnapshot, type HealthRow, type StatusRow };
import { MAINTENANCE_RECORD_KEY, parseMaintenanceRecord } from './maintenanceRecord';
import { toMember } from './members';
import { classifyEtcdError } from './problems';
import { quotaInPage } from './alarms';

export interface CheckOptions {
  tls?: EtcdTls;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Status rows also carry each member's space quota, read from /metrics on the same TLS
   * connection (no second handshake, one gauge scanned instead of the page parsed); not for
   * http:// endpoints, whose HTTP/2 etcd serves only as gRPC.
   */
  quota?: boolean;
  /** The clients of the endpoints (default: `rpc.ts`'s); tests pass etcd3's to compare. */
  open?: (endpoints: readonly string[], opts: RpcOptions) => Promise<EtcdRpc[]>;
}

type Client = EtcdRpc;

async function healthOf(client: Client, endpoint: string, opts: CheckOptions): Promise<HealthRow> {
  const t0 = performance.now();
  try {
    // A linearizable read: it needs a leader and a quorum, like etcdctl's probe.
    await client.range('health');
  } catch (err) {
    if (!/permission denied/i.test(String((err as Error).message))) {
      return {
        endpoint,
        health: false,
        tookMs: performance.now() - t0,
        alarms: [],
        problem: classifyEtcdError(err, endpoint, opts.tls),
      };
    }
  }
  const tookMs = performance.now() - t0;
  try {
    const res = await client.alarms();
    const alarms = [
      ...new Set(res.alarms.map((a) => String(a.alarm).toUpperCase()).filter((a) => a !== 'NONE')),
    ];
    if (alarms.length) {
      return {
        endpoint,
        health: false,
        tookMs,
        alarms,
        problem: {
          code: 'alarm',
          summary: `Active Alarm(s): ${alarms.join(' ')}`,
          hint: classifyEtcdError(new Error(alarms.join(' ')), endpoint).hint,
        },
      };
    }
    return { endpoint, health: true, tookMs, alarms: [] };
  } catch (err) {
    return {
      endpoint,
      health: false,
      tookMs,
      alarms: [],
      problem: {
        ...classifyEtcdError(err, endpoint, opts.tls),
        summary: 'Unable to fetch the alarm list',
      },
    };
  }
}

/** The quota gauge of the member's /metrics; undefined when the page does not answer or lacks it. */
async function quotaOf(client: Client): Promise<number | undefined> {
  try {
    return quotaInPage((await client.get('/metrics')).toString('utf8'));
  } catch {
    return undefined;
  }
}

async function statusOf(client: Client, endpoint: string, opts: CheckOptions): Promise<StatusRow> {
  try {
    const [s, quota] = await Promise.all([
      client.status(),
      // Over TLS only: on a plain http:// port etcd hands every HTTP/2 connection to gRPC.
      opts.quota && endpoint.startsWith('https:') ? quotaOf(client) : undefined,
    ]);
    const id = memberIdToHex(s.header.member_id);
    const leader = memberIdToHex(s.leader);
    return {
      endpoint,
      id,
      version: s.version,
      dbSize: Number(s.dbSize),
      dbSizeInUse: Number(s.dbSizeInUse ?? 0),
      leader,
      isLeader: leader === id,
      isLearner: Boolean(s.isLearner),
      raftTerm: s.raftTerm,
      raftIndex: s.raftIndex,
      raftAppliedIndex: s.raftAppliedIndex,
      errors: [...(s.errors ?? [])],
      ...(quota !== undefined ? { quotaBackendBytes: quota } : {}),
    };
  } catch (err) {
    return {
      endpoint,
      id: '',
      version: '',
      dbSize: 0,
      dbSizeInUse: 0,
      leader: '',
      isLeader: false,
      isLearner: false,
      raftTerm: '',
      raftIndex: '',
      raftAppliedIndex: '',
      errors: [],
      problem: classifyEtcdError(err, endpoint, opts.tls),
    };
  }
}

function summarize(health: HealthRow[], status: StatusRow[], members: EtcdMember[]): string {
  const ok = health.filter((h) => h.health).length;
  const leaderId = status.find((s) => s.isLeader)?.id ?? status.find((s) => s.leader)?.leader;
  const leaderName = members.find((m) => m.id === leaderId)?.name ?? leaderId;
  return `${ok}/${health.length} healthy${leaderName ? `, leader ${leaderName}` : ', no leader'}`;
}

/** One client per endpoint for `f`, all closed after it, whatever it did. */
async function withClients<T>(
  endpoints: readonly string[],
  opts: CheckOptions,
  f: (clients: Client[]) => Promise<T>,
): Promise<T> {
  const clients = await (opts.open ?? openRpcs)(endpoints, {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  try {
    return await f(clients);
  } finally {
    for (const c of clients) c.close();
  }
}

/**
 * Only the health of every endpoint (`etcdctl endpoint health`'s probe and alarm list), at once:
 * what `k3s-etcd health` shows, without the status, member list and record reads of a snapshot.
 */
export async function clusterHealth(
  endpoints: readonly string[],
  opts: CheckOptions = {},
): Promise<{ health: HealthRow[]; healthy: boolean }> {
  throwIfAborted(opts.signal, 'Health check');
  return withClients(endpoints, opts, async (clients) => {
    const health = await Promise.all(clients.map((c, i) => healthOf(c, endpoints[i] ?? '', opts)));
    throwIfAborted(opts.signal, 'Health check');
    return { health, healthy: health.every((h) => h.health) };
  });
}

/** The timer's last run: a member-local read on each client, never failing the caller. */
function lastMaintenance(clients: readonly Client[]): Promise<MaintenanceRun | undefined> {
  return Promise.any(
    clients.map((c) =>
      c.range(MAINTENANCE_RECORD_KEY, { serializable: true }).then((r) => r.kvs[0]?.value ?? null),
    ),
  ).then(
    (b) => parseMaintenanceRecord(b ?? undefined),
    () => undefined,
  );
}

/**
 * Only the status of every endpoint (`etcdctl endpoint status`), with each member's quota when
 * `quota` is set, and the maintenance timer's last run: what `k3s-etcd status` shows, without
 * the health probes and member lists of a snapshot.
 */
export async function clusterStatus(
  endpoints: readonly string[],
  opts: CheckOptions = {},
): Promise<{ status: StatusRow[]; maintenance?: MaintenanceRun }> {
  throwIfAborted(opts.signal, 'Status');
  return withClients(endpoints, opts, async (clients) => {
    const [status, maintenance] = await Promise.all([
      Promise.all(clients.map((c, i) => statusOf(c, endpoints[i] ?? '', opts))),
      lastMaintenance(clients),
    ]);
    throwIfAborted(opts.signal, 'Status');
    return maintenance ? { status, maintenance } : { status };
  });
}

/** Health, status and members of every endpoint, at once. */
export async function clusterSnapshot(
  endpoints: readonly string[],
  opts: CheckOptions = {},
): Promise<ClusterSnapshot> {
  throwIfAborted(opts.signal, 'Status refresh');
  return withClients(endpoints, opts, async (clients) => {
    const [health, status, membersResult, maintenance] = await Promise.all([
      Promise.all(clients.map((c, i) => healthOf(c, endpoints[i] ?? '', opts))),
      Promise.all(clients.map((c, i) => statusOf(c, endpoints[i] ?? '', opts))),
      Promise.any(clients.map((c) => c.memberList())).then(
        (r) => ({ members: r.members.map(toMember) }),
        (err: unknown) => ({
          members: [] as EtcdMember[],
          problem: classifyEtcdError(
            err instanceof AggregateError ? err.errors[0] : err,
            endpoints[0] ?? '',
            opts.tls,
          ),
        }),
      ),
      lastMaintenance(clients),
    ]);
    throwIfAborted(opts.signal, 'Status refresh');
    const snapshot: ClusterSnapshot = {
      at: new Date().toISOString(),
      endpoints: [...endpoints],
      health,
      status,
      members: membersResult.members,
      summary: summarize(health, status, membersResult.members),
      healthy: health.every((h) => h.health),
    };
    if (maintenance) snapshot.maintenance = maintenance;
    if ('problem' in membersResult && membersResult.problem)
      snapshot.membersProblem = membersResult.problem;
    return snapshot;
  });
}
