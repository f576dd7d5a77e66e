/**
 * What maintenance reads before it acts, per member: its role and health (the rolling engine's
 * member table, where an alarm does not count as unhealthy), its database file and what of it is
 * in use (`endpoint status`), its quota and the history's compaction state (its `/metrics`:
 * `etcd_server_quota_backend_bytes`, `etcd_debugging_mvcc_compact_revision`), and the cluster's
 * alarms. The rule (rule.ts) then says who needs defragmentation and whether to compact.
 */
import type { Etcd3 } from 'etcd3';
import { memberIdToHex, createEndpointClient, type EtcdTls } from '../etcd/client';
import { activeAlarms, ETCD_DEFAULT_QUOTA_BYTES } from '../etcd/alarms';
import { clusterSnapshot } from '../etcd/checks';
import { parsePrometheus, scalar } from '../etcd/prometheus';
import { endpointTargets, scrapeMetrics, type MetricsTarget } from '../etcd/scrape';
import { withAlarmsHealthy } from '../rolling/live';
import { memberTable, type MemberRow } from '../rolling/order';
import {
  compactionDecision,
  DEFAULT_DEFRAG_RULE,
  needsDefrag,
  type CompactionDecision,
  type DefragRule,
  type HistoryState,
  type MemberSpace,
  type Verdict,
} from './rule';
import { oldestReadableRevision } from '../etcd/compaction';

export interface MemberReading extends MemberSpace {
  id: string;
  endpoint?: string;
  role: 'leader' | 'follower' | 'learner';
  healthy: boolean;
  problem?: string;
  quotaFrom: 'metrics' | 'default';
  /** Alarms raised on this member (`NOSPACE`, `CORRUPT`). */
  alarms: string[];
  verdict: Verdict;
}

export interface Survey {
  /** ISO time of the reading. */
  at: string;
  members: MemberReading[];
  table: MemberRow[];
  /** Every active alarm, with the member's name where it is known. */
  alarms: Array<{ member: string; alarm: string }>;
  history?: HistoryState;
  /** Undefined when the history could not be read (no member answered). */
  compaction?: CompactionDecision;
  rule: DefragRule;
}

export interface SurveyOptions {
  endpoints: readonly string[];
  tls?: EtcdTls;
  /** /metrics per member (default: each client URL's /metrics). */
  metrics?: readonly MetricsTarget[];
  rule?: DefragRule;
  /** Compact whatever the rule says (the rescue, a NOSPACE alarm). */
  forceCompaction?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface MetricsReading {
  quotaBytes?: number;
  compactRevision?: number;
}

async function readMetrics(
  t: MetricsTarget,
  tls: EtcdTls | undefined,
  timeoutMs: number,
): Promise<MetricsReading> {
  try {
    const page = parsePrometheus(
      (await scrapeMetrics(t.url, { timeoutMs, ...(tls ? { tls } : {}) })).text,
    );
    const q = scalar(page, 'etcd_server_quota_backend_bytes');
    const c = scalar(page, 'etcd_debugging_mvcc_compact_revision');
    return {
      ...(q !== undefined && q > 0 ? { quotaBytes: q } : {}),
      ...(c !== undefined && c >= 0 ? { compactRevision: c } : {}),
    };
  } catch {
    return {};
  }
}

/** The last compaction's revision without /metrics, or undefined when nothing was compacted. */
export async function compactRevisionByRange(
  client: Etcd3,
  revision: number,
): Promise<number | undefined> {
  const oldest = await oldestReadableRevision(client, revision);
  return oldest === 1 ? undefined : oldest;
}

/** Reads the cluster for maintenance (see the top of this file). */
export async function surveyCluster(opts: SurveyOptions): Promise<Survey> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const rule = opts.rule ?? DEFAULT_DEFRAG_RULE;
  const conn = { timeoutMs, ...(opts.tls ? { tls: opts.tls } : {}) };
  const snap = await clusterSnapshot(opts.endpoints, {
    ...conn,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const table = memberTable(withAlarmsHealthy(snap));
  const targets = opts.metrics ?? endpointTargets(opts.endpoints);
  const metrics = await Promise.all(targets.map((t) => readMetrics(t, opts.tls, timeoutMs)));
  const metricsOf = (endpoint: string | undefined) => {
    const i = targets.findIndex((t) => t.endpoint === endpoint);
    return i >= 0 ? (metrics[i] ?? {}) : {};
  };

  // Alarms, the revision and the API server's compactor key, through the first member that answers.
  let alarms: Array<{ member: string; alarm: string }> = [];
  let history: HistoryState | undefined;
  for (const row of table.filter((r) => r.healthy && r.endpoint)) {
    const c = await createEndpointClient(row.endpoint!, conn);
    try {
      const raw = await activeAlarms(c);
      alarms = raw.map((a) => {
        const hex = memberIdToHex(a.memberID);
        return { member: table.find((r) => r.id === hex)?.name ?? hex, alarm: a.alarm };
      });
      const key = await c.kv.range({ key: Buffer.from('compact_rev_key'), limit: 1 });
      const revision = Number(key.header.revision);
      const fromMetrics = metrics
        .map((m) => m.compactRevision)
        .filter((x): x is number => x !== undefined);
      const compactRevision =
        fromMetrics.length > 0
          ? Math.max(...fromMetrics)
          : await compactRevisionByRange(c, revision);
      history = {
        revision,
        ...(compactRevision !== undefined && compactRevision > 0 ? { compactRevision } : {}),
        apiServerCompacts: key.kvs.length > 0,
      };
      break;
    } catch {
      // the next member
    } finally {
      c.close();
    }
  }
  const noSpace = alarms.some((a) => a.alarm === 'NOSPACE');
  const members = table.map((row): MemberReading => {
    const status = snap.status.find((s) => !s.problem && s.id === row.id);
    const m = metricsOf(row.endpoint);
    const space: MemberSpace = {
      name: row.name,
      ...(status ? { dbBytes: status.dbSize, inUseBytes: status.dbSizeInUse } : {}),
      quotaBytes: m.quotaBytes ?? ETCD_DEFAULT_QUOTA_BYTES,
    };
    const own = alarms.filter((a) => a.member === row.name).map((a) => a.alarm);
    const verdict: Verdict =
      noSpace && status
        ? { needed: true, why: 'NOSPACE is armed: every member is defragmented to clear it' }
        : needsDefrag(space, rule);
    return {
      ...space,
      id: row.id,
      ...(row.endpoint ? { endpoint: row.endpoint } : {}),
      role: !row.voter ? 'learner' : row.isLeader ? 'leader' : 'follower',
      healthy: row.healthy,
      ...(row.problem ? { problem: row.problem } : {}),
      quotaFrom: m.quotaBytes !== undefined ? 'metrics' : 'default',
      alarms: own,
      verdict,
    };
  });
  return {
    at: new Date().toISOString(),
    members,
    table,
    alarms,
    ...(history
      ? {
          history,
          compaction: compactionDecision(history, rule, opts.forceCompaction === true || noSpace),
        }
      : {}),
    rule,
  };
}
