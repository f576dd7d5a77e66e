/**
 * Defragmentation of a live cluster, one member at a time, by the rolling engine's rules: a
 * member's defragmentation blocks it (reads, writes and its raft apply) while bbolt rewrites its
 * file, so it is treated like a restart. Followers go first, the leader last, after handing its
 * leadership to a caught-up follower (one already defragmented first); before each member every
 * other voter must be healthy, else the run stops naming who is not; after each one the member
 * must answer healthy and caught up before the next goes. Each member's deadline is sized to its
 * database. The NOSPACE rescue relaxes the health rule: members that are down are skipped and
 * named, the others still go one at a time. An alarm never counts against a member here (the
 * live view is taken with `alarmsHealthy`): defragmentation is what clears it.
 */
import { errorMessage, throwIfAborted } from '../errors';
import { createEndpointClient, type EtcdTls } from '../etcd/client';
import type { LiveCluster } from './live';
import { caughtUp, leaderTarget, mayRestart, rollingOrder, type MemberRow } from './order';

const MiB = 1024 * 1024;
/** The deadline of one member's defragmentation: 60 s, and 5 s more per 100 MiB of its file. */
export const DEFRAG_BASE_TIMEOUT_MS = 60_000;
export const DEFRAG_MS_PER_100_MIB = 5_000;

/** How long one member's defragmentation may take, from its database file's size. */
export function defragTimeoutMs(dbBytes: number): number {
  const blocks = Math.ceil(Math.max(0, dbBytes) / (100 * MiB));
  return DEFRAG_BASE_TIMEOUT_MS + blocks * DEFRAG_MS_PER_100_MIB;
}

export interface DefragOrder {
  /** Members in the order they go: followers first, the leader last. */
  order: string[];
  /** The leader when the order was made (undefined: none is known). */
  leader?: string;
  /** Members asked for that cannot be defragmented (down, in the rescue), with why. */
  skipped: Array<{ member: string; why: string }>;
  /** Set when the run must not start, in words naming who is not healthy and what to do. */
  refusal?: string;
}

const unhealthyWords = (rows: readonly MemberRow[]) =>
  rows.map((r) => `${r.name} (${r.problem ?? 'unhealthy'})`).join(', ');

/**
 * The order over a member table (pure): `members` that answer, followers first, the leader last.
 * Outside the rescue any voter that is not healthy refuses the whole run; in the rescue the
 * members that are down are skipped and named.
 */
export function defragOrder(
  table: readonly MemberRow[],
  members: readonly string[],
  rescue = false,
): DefragOrder {
  const leader = table.find((r) => r.isLeader)?.name;
  const row = (n: string) => table.find((r) => r.name === n);
  const down = table.filter((r) => r.voter && !r.healthy);
  if (!rescue && down.length > 0) {
    const one = down.length === 1;
    return {
      order: [],
      ...(leader ? { leader } : {}),
      skipped: [],
      refusal:
        `maintenance is refused: ${one ? 'voter' : 'voters'} ${unhealthyWords(down)} ${one ? 'is' : 'are'} not healthy. ` +
        `Bring ${one ? 'it' : 'them'} back first: defragmenting a member blocks it, and with one more member blocked the cluster could lose its quorum` +
        ' (with a NOSPACE alarm, `k3s-etcd maintain --rescue` works on the members that answer)',
    };
  }
  if (!rescue && table.length > 1 && !leader)
    return { order: [], skipped: [], refusal: 'maintenance is refused: the cluster has no leader' };
  const skipped = members
    .filter((m) => !row(m)?.healthy || !row(m)?.endpoint)
    .map((m) => ({
      member: m,
      why: row(m) ? (row(m)?.problem ?? 'no client URL answered') : 'not in the member list',
    }));
  const go = members.filter((m) => !skipped.some((s) => s.member === m));
  return { order: rollingOrder(table, go), ...(leader ? { leader } : {}), skipped };
}

/** One member's defragmentation. */
export interface DefragStep {
  member: string;
  endpoint: string;
  /** Its role when its turn came, before any hand-over. */
  role: 'leader' | 'follower' | 'learner';
  /** The follower that took the leadership before this member went. */
  leadershipTo?: string;
  beforeBytes?: number;
  beforeInUseBytes?: number;
  afterBytes?: number;
  afterInUseBytes?: number;
  timeoutMs: number;
  durationMs: number;
  ok: boolean;
  error?: string;
}

export interface RollingDefragResult extends DefragOrder {
  steps: DefragStep[];
  /** Set when the run stopped before its end (a failure, a refusal between members). */
  stopped?: string;
}

export interface MemberSize {
  dbBytes: number;
  inUseBytes: number;
}

export interface RollingDefragOptions {
  live: LiveCluster;
  tls?: EtcdTls;
  /** The members to defragment (by name). */
  members: readonly string[];
  /** The NOSPACE rescue: members that are down are skipped instead of refusing the run. */
  rescue?: boolean;
  /** Hand the leadership to a caught-up follower before the leader's turn (default true). */
  moveLeader?: boolean;
  /** How long a member may take to answer healthy and caught up after its turn (default 60 s). */
  settleMs?: number;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  /** How one member is defragmented and measured (default: over a client of its own). */
  member?: {
    size(endpoint: string): Promise<MemberSize>;
    defragment(endpoint: string, timeoutMs: number): Promise<void>;
  };
}

/** `0.04 s`, `1.2 s`, `75 s`: a duration as the reports show it. */
export function seconds(ms: number): string {
  return ms < 1000
    ? `${(ms / 1000).toFixed(2)} s`
    : ms < 10_000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${Math.round(ms / 1000)} s`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The default: etcd's Maintenance API over a client bound to the member's own URL. */
export function endpointMember(
  tls: EtcdTls | undefined,
): NonNullable<RollingDefragOptions['member']> {
  const withClient = async <T>(
    endpoint: string,
    timeoutMs: number,
    f: (c: Awaited<ReturnType<typeof createEndpointClient>>) => Promise<T>,
  ): Promise<T> => {
    const c = await createEndpointClient(endpoint, { timeoutMs, ...(tls ? { tls } : {}) });
    try {
      return await f(c);
    } finally {
      c.close();
    }
  };
  return {
    size: (endpoint) =>
      withClient(endpoint, 10_000, async (c) => {
        const s = await c.maintenance.status();
        return { dbBytes: Number(s.dbSize), inUseBytes: Number(s.dbSizeInUse ?? 0) };
      }),
    defragment: (endpoint, timeoutMs) =>
      withClient(endpoint, timeoutMs, async (c) => {
        await c.maintenance.defragment();
      }),
  };
}

/** Defragments `members` one at a time (see the top of this file). */
export async function rollingDefrag(opts: RollingDefragOptions): Promise<RollingDefragResult> {
  const say = opts.onLine ?? (() => undefined);
  const member = opts.member ?? endpointMember(opts.tls);
  const settleMs = opts.settleMs ?? 60_000;
  let table = await opts.live.probe(opts.signal);
  const planned = defragOrder(table, opts.members, opts.rescue);
  const result: RollingDefragResult = { ...planned, steps: [] };
  if (planned.refusal) return result;
  for (const s of planned.skipped) say(`${s.member}: skipped, it does not answer (${s.why})`);
  const done: string[] = [];
  for (const name of planned.order) {
    throwIfAborted(opts.signal, 'Defragmentation');
    table = await opts.live.probe(opts.signal);
    if (!opts.rescue) {
      const may = mayRestart(table, name);
      if (!may.ok) {
        result.stopped = may.why.replace(/^restarting/, 'defragmenting');
        say(result.stopped);
        break;
      }
    }
    let row = table.find((r) => r.name === name);
    if (!row?.endpoint || !row.healthy) {
      const why = row?.problem ?? 'no client URL answered';
      result.skipped.push({ member: name, why });
      say(`${name}: skipped, it does not answer (${why})`);
      continue;
    }
    const step: DefragStep = {
      member: name,
      endpoint: row.endpoint,
      role: !row.voter ? 'learner' : row.isLeader ? 'leader' : 'follower',
      timeoutMs: 0,
      durationMs: 0,
      ok: false,
    };
    if (row.isLeader && opts.moveLeader !== false && table.length > 1) {
      const target = leaderTarget(table, done);
      if (target) {
        say(`${name} leads: handing the leadership to ${target.name} first`);
        try {
          await opts.live.moveLeader(row, target, opts.signal);
          step.leadershipTo = target.name;
        } catch (err) {
          say(`move-leader failed (${errorMessage(err)}): ${name} is defragmented as the leader`);
        }
        table = await opts.live.probe(opts.signal);
        row = table.find((r) => r.name === name) ?? row;
      } else say(`${name} leads and no follower is caught up: it is defragmented as the leader`);
    }
    const endpoint = step.endpoint;
    try {
      const before = await member.size(endpoint);
      step.beforeBytes = before.dbBytes;
      step.beforeInUseBytes = before.inUseBytes;
    } catch {
      // sized by its deadline's floor
    }
    step.timeoutMs = defragTimeoutMs(step.beforeBytes ?? 0);
    say(`${name}: defragmenting (${step.role}, deadline ${Math.round(step.timeoutMs / 1000)} s)`);
    const t0 = performance.now();
    try {
      await member.defragment(endpoint, step.timeoutMs);
      step.ok = true;
    } catch (err) {
      step.error = errorMessage(err);
    }
    step.durationMs = Math.round(performance.now() - t0);
    try {
      const after = await member.size(endpoint);
      step.afterBytes = after.dbBytes;
      step.afterInUseBytes = after.inUseBytes;
    } catch {
      // read again by the report's survey
    }
    result.steps.push(step);
    if (!step.ok) {
      result.stopped = `defragmentation of ${name} failed: ${step.error ?? 'unknown error'}; the members after it were left alone`;
      say(result.stopped);
      break;
    }
    done.push(name);
    say(`${name}: defragmented in ${seconds(step.durationMs)}`);
    // Back and caught up before the next one goes.
    const until = Date.now() + settleMs;
    for (;;) {
      const v = caughtUp(await opts.live.probe(opts.signal), name);
      if (v.ok) break;
      if (Date.now() > until) {
        result.stopped = `${name} did not answer healthy and caught up ${Math.round(settleMs / 1000)} s after its defragmentation (${v.why}); the members after it were left alone`;
        say(result.stopped);
        return result;
      }
      await sleep(300);
    }
  }
  return result;
}
