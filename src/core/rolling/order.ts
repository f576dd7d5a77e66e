/**
 * The rules of a rolling change, as pure functions over a member status table (one row per
 * member, built from `endpoint health`, `endpoint status` and `member list`): which member goes
 * next (members already down first, then followers, the leader last), whether a member may go
 * now (every other voter healthy, else a refusal naming who is not), whether a restarted member
 * has caught up with the leader, and which follower takes the leadership before the leader goes.
 */
import type { ClusterSnapshot } from '../../shared/etcdTypes';

/** One member as the rolling engine sees it. */
export interface MemberRow {
  /** The member's name (its id while it has not started). */
  name: string;
  /** Hex id, as etcdctl shows it. */
  id: string;
  /** A voting member (not a learner). */
  voter: boolean;
  /** The client URL it answered on (undefined: it has none, or none answered). */
  endpoint?: string;
  healthy: boolean;
  /** Why it is not healthy, in words. */
  problem?: string;
  isLeader: boolean;
  /** Its raft index, when its status answered. */
  raftIndex?: number;
}

/** Raft entries a restarted member may lag behind the leader and still count as caught up. */
export const CAUGHT_UP_GAP = 50;

/** The member table of a snapshot taken over every member's client URL. */
export function memberTable(snap: ClusterSnapshot): MemberRow[] {
  const leaderId = snap.status.find((s) => !s.problem && s.leader)?.leader;
  return snap.members.map((m): MemberRow => {
    // Matched by the id the endpoint answers with, then by URL: a URL may name another member.
    const status =
      snap.status.find((s) => !s.problem && s.id === m.id) ??
      snap.status.find((s) => m.clientUrls.includes(s.endpoint));
    const endpoint = status?.endpoint ?? m.clientUrls.find((u) => snap.endpoints.includes(u));
    const health = snap.health.find((h) => h.endpoint === endpoint);
    const healthy = Boolean(health?.health) && Boolean(status) && !status?.problem;
    const problem = !m.name
      ? 'not started'
      : healthy
        ? undefined
        : (health?.problem?.summary ??
          status?.problem?.summary ??
          (endpoint ? 'unhealthy' : 'no client URL answered'));
    return {
      name: m.name || m.id,
      id: m.id,
      voter: !m.isLearner,
      ...(endpoint ? { endpoint } : {}),
      healthy,
      ...(problem ? { problem } : {}),
      isLeader: leaderId !== undefined && m.id === leaderId,
      ...(status && !status.problem && status.raftIndex !== ''
        ? { raftIndex: Number(status.raftIndex) }
        : {}),
    };
  });
}

/** A verdict with its reason in words. */
export interface Verdict {
  ok: boolean;
  why: string;
}

const names = (rows: readonly MemberRow[]) =>
  rows.map((r) => `${r.name} (${r.problem ?? 'unhealthy'})`).join(', ');

/**
 * May `member` be restarted now? Only when every other voter answers healthy: a restart while
 * another voter is down could take the cluster below its quorum.
 */
export function mayRestart(table: readonly MemberRow[], member: string): Verdict {
  const others = table.filter((r) => r.voter && r.name !== member);
  const down = others.filter((r) => !r.healthy);
  if (down.length > 0) {
    return {
      ok: false,
      why: `restarting ${member} is refused: ${down.length === 1 ? 'voter' : 'voters'} ${names(down)} ${down.length === 1 ? 'is' : 'are'} not healthy. Bring ${down.length === 1 ? 'it' : 'them'} back first (or restart ${down.length === 1 ? 'it' : 'them'} first): with one more member down the cluster could lose its quorum`,
    };
  }
  if (others.length > 0 && !table.some((r) => r.isLeader)) {
    return { ok: false, why: `restarting ${member} is refused: the cluster has no leader` };
  }
  return {
    ok: true,
    why:
      others.length === 0
        ? `${member} is the only voter: it restarts alone`
        : `the other ${others.length} ${others.length === 1 ? 'voter is' : 'voters are'} healthy`,
  };
}

/**
 * The next member of `remaining` to restart: one already down first (restarting it costs
 * nothing), then a follower, the leader last. Unknown names (not started, not a member yet)
 * count as down.
 */
export function nextMember(table: readonly MemberRow[], remaining: readonly string[]): string {
  const row = (n: string) => table.find((r) => r.name === n);
  return (
    remaining.find((n) => !row(n)?.healthy) ??
    remaining.find((n) => !row(n)?.isLeader) ??
    (remaining[0] as string)
  );
}

/** The whole order as it would run if nothing changed meanwhile (for the preview). */
export function rollingOrder(table: readonly MemberRow[], members: readonly string[]): string[] {
  const left = [...members];
  const order: string[] = [];
  while (left.length > 0) {
    const n = nextMember(table, left);
    order.push(n);
    left.splice(left.indexOf(n), 1);
  }
  return order;
}

/** Has `member` caught up: healthy, and its raft index within `gap` of the leader's? */
export function caughtUp(
  table: readonly MemberRow[],
  member: string,
  gap = CAUGHT_UP_GAP,
): Verdict {
  const row = table.find((r) => r.name === member);
  if (!row) return { ok: false, why: `${member} is not in the member list` };
  if (!row.healthy) return { ok: false, why: `${member} is not healthy (${row.problem ?? '?'})` };
  const leader = table.find((r) => r.isLeader);
  if (!leader) return { ok: false, why: 'the cluster has no leader' };
  if (row.raftIndex === undefined || leader.raftIndex === undefined)
    return { ok: false, why: `the raft index of ${member} or of the leader did not answer` };
  const lag = leader.raftIndex - row.raftIndex;
  return lag <= gap
    ? {
        ok: true,
        why: `${member} is at raft index ${row.raftIndex}, the leader at ${leader.raftIndex}`,
      }
    : {
        ok: false,
        why: `${member} is ${lag} raft entries behind the leader ${leader.name} (${row.raftIndex} < ${leader.raftIndex})`,
      };
}

/**
 * The follower to hand the leadership to before the leader restarts: a healthy voter caught up
 * with the leader, one of `preferred` (already on the new files) first, then the furthest ahead.
 */
export function leaderTarget(
  table: readonly MemberRow[],
  preferred: readonly string[] = [],
  gap = CAUGHT_UP_GAP,
): MemberRow | undefined {
  const candidates = table.filter((r) => r.voter && !r.isLeader && caughtUp(table, r.name, gap).ok);
  return candidates.sort(
    (a, b) =>
      Number(preferred.includes(b.name)) - Number(preferred.includes(a.name)) ||
      (b.raftIndex ?? 0) - (a.raftIndex ?? 0),
  )[0];
}
