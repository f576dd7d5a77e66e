/**
 * Keeping the database small and writable. A plan (the dry run) reads every member (survey.ts)
 * and says who needs defragmentation by the rule, whether the history is compacted first, and
 * the order; a run compacts when the plan says so, defragments one member at a time by the
 * rolling engine's rules (rolling/defrag.ts), reads every member again and disarms the alarms
 * only when every member has headroom under its quota. NOSPACE never blocks it: an alarm does
 * not count against a member's health, and compaction and defragmentation are allowed under it.
 *
 * The rescue (`rescue: true`) is the same run for a cluster that has hit its quota: it says what
 * fills the space (the keyspace operation's summary), always compacts, defragments every member that answers (one that
 * is down is skipped and named, instead of refusing), and proves that writes work again with a
 * put and a delete of a probe key. When the database still has no headroom it offers a larger
 * quota (`quota`); the front end applies it (inventory edit, rolling provision) and calls
 * `settleAlarms` again.
 */
import { randomBytes } from 'node:crypto';
import type { AlarmType, Etcd3 } from 'etcd3';
import { humanBytes } from '../../shared/etcdTypes';
import { errorMessage, K3sEtcdError, throwIfAborted } from '../errors';
import { createEndpointClient, memberIdFromHex, type EtcdTls } from '../etcd/client';
import type { MetricsTarget } from '../etcd/scrape';
import {
  defragOrder,
  rollingDefrag,
  type DefragOrder,
  type RollingDefragResult,
} from '../rolling/defrag';
import { liveCluster } from '../rolling/live';
import { keyspaceSummary, type KeyspaceSummary } from '../keyspace/scan';
import { printable } from '../keyspace/view';
import { mayDisarm, suggestedQuota, type DefragRule, type Verdict } from './rule';
import { surveyCluster, type MemberReading, type Survey } from './survey';

/** etcd's AlarmType NOSPACE as the wire wants it (the enum's number; etcd3 loads lazily). */
const NOSPACE = 1 as AlarmType;
const keysWord = (n: number) => `${n} ${n === 1 ? 'key' : 'keys'}`;

/** Where the write probe goes (deleted again at once). */
export const WRITE_PROBE_PREFIX = '/k3s-etcd/maintain-probe/';

export interface MaintainOptions {
  /** The cluster's name (the report's), or the endpoints' when there is no inventory. */
  cluster: string;
  endpoints: readonly string[];
  tls?: EtcdTls;
  metrics?: readonly MetricsTarget[];
  rule?: DefragRule;
  rescue?: boolean;
  /** Hand the leadership over before the leader's turn (default true). */
  moveLeader?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
}

export interface MaintenancePlan {
  cluster: string;
  rescue: boolean;
  survey: Survey;
  /** Members the rule picked (the rescue: every member that answers), in the order they go. */
  defrag: DefragOrder;
  /** Why nothing will run (a member down outside the rescue, nothing answering). */
  refusal?: string;
  /** Nothing to do: no member needs defragmentation, no compaction, no alarm. */
  nothingToDo: boolean;
}

export interface MaintenanceReport {
  cluster: string;
  rescue: boolean;
  startedAt: string;
  finishedAt: string;
  before: MemberReading[];
  after: MemberReading[];
  rule: DefragRule;
  compaction: { why: string; done: boolean; revision?: number; error?: string };
  defrag: RollingDefragResult;
  alarms: AlarmOutcome;
  keyspace?: KeyspaceSummary;
  /** The rescue's proof: a put and a delete of a probe key. */
  writeProbe?: { ok: boolean; error?: string };
  /** Set when the database still lacks headroom: the quota to raise it to. */
  quota?: { suggestedBytes: number; why: string };
  /** What was done, in order, in words. */
  lines: string[];
  ok: boolean;
}

export interface AlarmOutcome {
  before: Array<{ member: string; alarm: string }>;
  disarmed: Array<{ member: string; alarm: string }>;
  /** Why an alarm stayed armed. */
  kept?: string;
}

/** The dry run: what a run would do, from one reading of every member. */
export async function planMaintenance(opts: MaintainOptions): Promise<MaintenancePlan> {
  const survey = await surveyCluster({
    endpoints: opts.endpoints,
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.rule ? { rule: opts.rule } : {}),
    forceCompaction: opts.rescue === true,
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const rescue = opts.rescue === true;
  const who = survey.members.filter((m) => rescue || m.verdict.needed).map((m) => m.name);
  const defrag = defragOrder(survey.table, who, rescue);
  const refusal =
    defrag.refusal ??
    (survey.history === undefined
      ? 'no member answered: check `k3s-etcd health` first'
      : undefined);
  return {
    cluster: opts.cluster,
    rescue,
    survey,
    defrag,
    ...(refusal ? { refusal } : {}),
    nothingToDo:
      !refusal &&
      defrag.order.length === 0 &&
      !survey.compaction?.compact &&
      survey.alarms.length === 0,
  };
}

async function firstAnswering<T>(
  endpoints: readonly string[],
  conn: { timeoutMs: number; tls?: EtcdTls },
  f: (c: Etcd3) => Promise<T>,
): Promise<T> {
  let last: unknown = new Error('no endpoints');
  for (const e of endpoints) {
    const c = await createEndpointClient(e, conn);
    try {
      return await f(c);
    } catch (err) {
      last = err;
    } finally {
      c.close();
    }
  }
  throw last;
}

/** Runs a plan (see the top of this file); never throws for a failed step, the report says it. */
export async function runMaintenance(
  plan: MaintenancePlan,
  opts: MaintainOptions,
): Promise<MaintenanceReport> {
  if (plan.refusal) throw new K3sEtcdError('etcd-unreachable', plan.refusal);
  const startedAt = new Date().toISOString();
  const lines: string[] = [];
  const say = (l: string) => {
    lines.push(l);
    opts.onLine?.(l);
  };
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const conn = { timeoutMs, ...(opts.tls ? { tls: opts.tls } : {}) };
  const endpoints = plan.survey.members
    .filter((m) => m.healthy && m.endpoint)
    .map((m) => m.endpoint!);

  let keyspace: KeyspaceSummary | undefined;
  if (plan.rescue) {
    try {
      keyspace = await firstAnswering(endpoints, { ...conn, timeoutMs: 30_000 }, (c) =>
        keyspaceSummary(c, opts.signal ? { signal: opts.signal } : {}),
      );
      const top = keyspace.resources
        .slice(0, 3)
        .map((g) => `${printable(g.resource)} ${humanBytes(g.bytes)} in ${keysWord(g.keys)}`);
      const inUse = Math.max(0, ...plan.survey.members.map((m) => m.inUseBytes ?? 0));
      const history =
        inUse > keyspace.bytes * 2
          ? `; the rest of the ${humanBytes(inUse)} in use is the history of older revisions, which compaction frees`
          : '';
      say(
        `what fills the space: ${humanBytes(keyspace.bytes)} in ${keysWord(keyspace.keys)} at revision ${keyspace.revision}; the most: ${top.join(', ') || 'nothing'}${history}`,
      );
    } catch (err) {
      say(`the keyspace could not be read (${errorMessage(err)})`);
    }
  }

  const decision = plan.survey.compaction!;
  const compaction: MaintenanceReport['compaction'] = { why: decision.why, done: false };
  say(decision.why);
  if (decision.compact) {
    throwIfAborted(opts.signal, 'Compaction');
    try {
      await firstAnswering(endpoints, { ...conn, timeoutMs: 120_000 }, async (c) => {
        try {
          await c.kv.compact({ revision: String(decision.revision), physical: true });
        } catch (err) {
          if (!/required revision has been compacted/.test(errorMessage(err))) throw err;
        }
      });
      compaction.done = true;
      compaction.revision = decision.revision;
      say(`compacted the history at revision ${decision.revision}`);
    } catch (err) {
      compaction.error = errorMessage(err);
      say(`compaction failed: ${compaction.error}`);
    }
  }

  const defrag = await rollingDefrag({
    live: liveCluster(
      { endpoints: [...opts.endpoints], ...(opts.tls ? { tls: opts.tls } : {}) },
      2000,
      true,
    ),
    ...(opts.tls ? { tls: opts.tls } : {}),
    members: plan.defrag.order,
    rescue: plan.rescue,
    ...(opts.moveLeader === false ? { moveLeader: false } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    onLine: say,
  });
  for (const s of plan.defrag.skipped)
    if (!defrag.skipped.some((x) => x.member === s.member)) defrag.skipped.push(s);
  if (defrag.steps.length === 0 && plan.defrag.order.length === 0)
    say('no member needs defragmentation');

  const settled = await settleAlarms({ ...opts, rescue: plan.rescue }, say);
  const ok =
    (!decision.compact || compaction.done) &&
    !defrag.stopped &&
    defrag.steps.every((s) => s.ok) &&
    !settled.alarms.kept &&
    (settled.writeProbe?.ok ?? true);
  return {
    cluster: plan.cluster,
    rescue: plan.rescue,
    startedAt,
    finishedAt: new Date().toISOString(),
    before: plan.survey.members,
    after: settled.after.members,
    rule: plan.survey.rule,
    compaction,
    defrag,
    alarms: { ...settled.alarms, before: plan.survey.alarms },
    ...(keyspace ? { keyspace } : {}),
    ...(settled.writeProbe ? { writeProbe: settled.writeProbe } : {}),
    ...(settled.quota ? { quota: settled.quota } : {}),
    lines,
    ok,
  };
}

export interface Settled {
  after: Survey;
  alarms: Omit<AlarmOutcome, 'before'>;
  writeProbe?: { ok: boolean; error?: string };
  quota?: { suggestedBytes: number; why: string };
}

/**
 * May NOSPACE be disarmed after `after`? Every voter is judged, a member that is down included
 * (its size unknown keeps the alarm armed: it may still be full), and a learner that answers;
 * when space is what lacks on the members read, the quota that would do.
 */
export function disarmVerdict(after: Survey): Pick<Settled, 'quota'> & { may: Verdict } {
  const judged = after.members.filter((m) => m.role !== 'learner' || m.healthy);
  const may = mayDisarm(judged, after.rule);
  if (may.needed) return { may };
  const read = judged.filter((m) => m.dbBytes !== undefined);
  if (read.length === 0) return { may };
  const inUse = Math.max(...read.map((m) => m.inUseBytes ?? m.dbBytes!));
  const quota = Math.max(...read.map((m) => m.quotaBytes));
  if (inUse < quota * after.rule.quotaShare * 0.9) return { may };
  return {
    may,
    quota: {
      suggestedBytes: suggestedQuota(inUse, quota),
      why: `${humanBytes(inUse)} is in use after compaction and defragmentation, too near the ${humanBytes(quota)} quota`,
    },
  };
}

/**
 * Reads every member again; disarms the alarms when every member has headroom under its quota,
 * a member down keeping them armed (else says why and, when space is what lacks, which quota
 * would do); in the rescue proves writes with a put and a delete of a probe key.
 */
export async function settleAlarms(
  opts: MaintainOptions,
  say: (line: string) => void = () => undefined,
): Promise<Settled> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const conn = { timeoutMs, ...(opts.tls ? { tls: opts.tls } : {}) };
  const after = await surveyCluster({
    endpoints: opts.endpoints,
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.rule ? { rule: opts.rule } : {}),
    timeoutMs,
  });
  const answering = after.members.filter((m) => m.healthy);
  const out: Settled = { after, alarms: { disarmed: [] } };
  const corrupt = after.alarms.filter((a) => a.alarm !== 'NOSPACE');
  const noSpace = after.alarms.filter((a) => a.alarm === 'NOSPACE');
  if (corrupt.length > 0) {
    out.alarms.kept = `${corrupt.map((a) => `${a.alarm} on ${a.member}`).join(', ')} stays armed: a corrupt member is restored from a snapshot, never disarmed`;
    say(out.alarms.kept);
  }
  if (noSpace.length > 0) {
    const { may, quota } = disarmVerdict(after);
    if (!may.needed) {
      out.alarms.kept = [out.alarms.kept, may.why].filter(Boolean).join('; ');
      say(may.why);
      if (quota) out.quota = quota;
    } else {
      try {
        await firstAnswering(answering.map((m) => m.endpoint!).filter(Boolean), conn, async (c) => {
          for (const a of noSpace) {
            const row = after.table.find((r) => r.name === a.member);
            const memberID = memberIdFromHex(row ? row.id : a.member);
            await c.maintenance.alarm({ action: 'Deactivate', memberID, alarm: NOSPACE });
          }
        });
        out.alarms.disarmed = noSpace;
        say(`disarmed ${noSpace.map((a) => `${a.alarm} on ${a.member}`).join(', ')} (${may.why})`);
      } catch (err) {
        out.alarms.kept = `disarming failed: ${errorMessage(err)}`;
        say(out.alarms.kept);
      }
    }
  }
  if (opts.rescue) {
    const key = `${WRITE_PROBE_PREFIX}${randomBytes(6).toString('hex')}`;
    try {
      await firstAnswering(answering.map((m) => m.endpoint!).filter(Boolean), conn, async (c) => {
        await c.put(key).value('probe');
        await c.delete().key(key);
      });
      out.writeProbe = { ok: true };
      say(`writes work again: put and deleted ${key}`);
    } catch (err) {
      out.writeProbe = { ok: false, error: errorMessage(err) };
      say(`writes still fail: ${out.writeProbe.error}`);
    }
  }
  return out;
}
