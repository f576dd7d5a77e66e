/**
 * The rules of maintenance, pure, so that the CLI, the editor and a timer on an etcd host decide
 * alike: who needs defragmentation (free pages or nearness to the quota), whether the history
 * needs compacting (K3s's API server compacts every 5 minutes), and whether an alarm may be
 * disarmed (every member under its quota with headroom).
 */
import { humanBytes } from '../../shared/etcdTypes';

const MiB = 1024 * 1024;

/** When a member needs defragmentation. */
export interface DefragRule {
  /** More than this share of its file free (0.5: more than half) ... */
  freeShare: number;
  /** ... and the file over this size (64 MiB: below it defragmentation gains little). */
  minDbBytes: number;
  /** Or the file over this share of its quota (0.8), however little is free. */
  quotaShare: number;
  /**
   * Revisions since the last compaction that count as recent: the history is not compacted
   * again (K3s's API server compacts every 5 minutes, keeping what it wrote since).
   */
  recentRevisions: number;
}

export const DEFAULT_DEFRAG_RULE: DefragRule = {
  freeShare: 0.5,
  minDbBytes: 64 * MiB,
  quotaShare: 0.8,
  recentRevisions: 10_000,
};

/** What the rule reads of one member. */
export interface MemberSpace {
  name: string;
  /** Its database file (endpoint status DB SIZE). */
  dbBytes?: number;
  /** What of the file is in use (DB SIZE IN USE). */
  inUseBytes?: number;
  /** Its --quota-backend-bytes, from its /metrics (or etcd's default). */
  quotaBytes: number;
}

export interface Verdict {
  needed: boolean;
  why: string;
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

/** Free share of a member's file (0 when unknown). */
export function freeShare(m: Pick<MemberSpace, 'dbBytes' | 'inUseBytes'>): number {
  if (!m.dbBytes || m.inUseBytes === undefined) return 0;
  return Math.max(0, m.dbBytes - m.inUseBytes) / m.dbBytes;
}

/** Does this member need defragmentation, and why (in words for the dry run)? */
export function needsDefrag(m: MemberSpace, rule: DefragRule = DEFAULT_DEFRAG_RULE): Verdict {
  if (m.dbBytes === undefined) return { needed: false, why: 'its size could not be read' };
  const free = freeShare(m);
  const ofQuota = m.dbBytes / m.quotaBytes;
  if (ofQuota > rule.quotaShare)
    return {
      needed: true,
      why: `${humanBytes(m.dbBytes)} is ${pct(ofQuota)} of its ${humanBytes(m.quotaBytes)} quota (over ${pct(rule.quotaShare)})`,
    };
  if (free > rule.freeShare && m.dbBytes > rule.minDbBytes)
    return {
      needed: true,
      why: `${pct(free)} of its ${humanBytes(m.dbBytes)} file is free (over ${pct(rule.freeShare)}, file over ${humanBytes(rule.minDbBytes)})`,
    };
  return {
    needed: false,
    why:
      m.dbBytes <= rule.minDbBytes && free > rule.freeShare
        ? `${pct(free)} free, but the file is only ${humanBytes(m.dbBytes)} (${humanBytes(rule.minDbBytes)} or less)`
        : `${pct(free)} free, ${pct(ofQuota)} of its quota`,
  };
}

/** The history as read from the cluster. */
export interface HistoryState {
  revision: number;
  /** The last compaction's revision (undefined: never compacted, or unknown). */
  compactRevision?: number;
  /** The API server's compactor key (`compact_rev_key`): K3s's API server compacts every 5 minutes. */
  apiServerCompacts: boolean;
}

export interface CompactionDecision {
  compact: boolean;
  /** Compact at this revision (the current one). */
  revision: number;
  why: string;
}

/**
 * Compact unless the last compaction is recent (fewer than `rule.recentRevisions` revisions
 * ago); `force` (the rescue, a NOSPACE alarm) always compacts.
 */
export function compactionDecision(
  h: HistoryState,
  rule: DefragRule = DEFAULT_DEFRAG_RULE,
  force = false,
): CompactionDecision {
  const since = h.compactRevision === undefined ? h.revision : h.revision - h.compactRevision;
  const apiServer = h.apiServerCompacts
    ? "K3s's API server compacts the history every 5 minutes (compact_rev_key)"
    : 'no API server compacts this etcd (no compact_rev_key)';
  const last =
    h.compactRevision === undefined
      ? 'never compacted'
      : `last compacted at revision ${h.compactRevision}, ${since} revisions ago`;
  if (since <= 0)
    return { compact: false, revision: h.revision, why: `nothing to compact (${last})` };
  if (force)
    return {
      compact: true,
      revision: h.revision,
      why: `compacting at revision ${h.revision} to free the history's space (${last})`,
    };
  if (h.compactRevision !== undefined && since <= rule.recentRevisions)
    return {
      compact: false,
      revision: h.revision,
      why: `compaction skipped: ${last}, which is recent (${rule.recentRevisions} or fewer); ${apiServer}`,
    };
  return {
    compact: true,
    revision: h.revision,
    why: `compacting at revision ${h.revision}: ${last}; ${apiServer}`,
  };
}

/**
 * May the alarms be disarmed? Only when every member answered and its file is under its quota
 * with headroom (under `rule.quotaShare` of it): disarming a full database only re-arms it at
 * the next write. Pass every voter, a member down included: its size unknown keeps the alarm
 * armed, with its `problem` said.
 */
export function mayDisarm(
  members: ReadonlyArray<MemberSpace & { problem?: string }>,
  rule = DEFAULT_DEFRAG_RULE,
): Verdict {
  const unknown = members.filter((m) => m.dbBytes === undefined);
  if (unknown.length > 0)
    return {
      needed: false,
      why: `the alarm stays armed: the size of ${unknown
        .map((m) => (m.problem ? `${m.name} (${m.problem})` : m.name))
        .join(
          ', ',
        )} could not be read, and a member not read may still be full: bring it back and run maintain again`,
    };
  const full = members.filter((m) => m.dbBytes! >= m.quotaBytes * rule.quotaShare);
  if (full.length > 0)
    return {
      needed: false,
      why: `the alarm stays armed: ${full
        .map(
          (m) =>
            `${m.name} holds ${humanBytes(m.dbBytes!)} of its ${humanBytes(m.quotaBytes)} quota`,
        )
        .join(
          ', ',
        )} (${pct(rule.quotaShare)} or more): delete data, or raise etcd.quotaBackendBytes and apply it with provision`,
    };
  return {
    needed: true,
    why: `every member is under ${pct(rule.quotaShare)} of its quota`,
  };
}

/** The quota to offer when compaction and defragmentation leave too little room: twice the
 * current one, doubled again until it holds twice what is in use. */
export function suggestedQuota(inUseBytes: number, currentQuota: number): number {
  let q = Math.max(currentQuota * 2, 64 * MiB);
  while (q < inUseBytes * 2) q *= 2;
  return q;
}

/** A size as the inventory writes it (`512MiB`, `4GiB`). */
export function inventorySize(bytes: number): string {
  if (bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30}GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB}MiB`;
  return String(bytes);
}

/** `64MiB`, `1GiB`, `1048576`: a size for a flag or a setting; NaN when it is not one. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|kB|MB|GB)?\s*$/.exec(text);
  if (!m) return NaN;
  const units: Record<string, number> = {
    B: 1,
    KiB: 2 ** 10,
    MiB: 2 ** 20,
    GiB: 2 ** 30,
    kB: 1e3,
    MB: 1e6,
    GB: 1e9,
  };
  return Math.round(Number(m[1]) * units[m[2] ?? 'B']!);
}

/** A rule from loose values (CLI flags, settings); each is checked, NaN or out of range refused. */
export function ruleFrom(
  v: { freeShare?: number; minDbBytes?: number; quotaShare?: number; recentRevisions?: number },
  base: DefragRule = DEFAULT_DEFRAG_RULE,
): DefragRule | string {
  const share = (x: number | undefined, name: string) =>
    x === undefined || (x > 0 && x < 1)
      ? undefined
      : `${name} is a share between 0 and 1 (e.g. 0.5)`;
  const problem =
    share(v.freeShare, 'the free share') ??
    share(v.quotaShare, 'the quota share') ??
    (v.minDbBytes === undefined || (Number.isFinite(v.minDbBytes) && v.minDbBytes >= 0)
      ? undefined
      : 'the minimum size is a size such as 64MiB') ??
    (v.recentRevisions === undefined ||
    (Number.isInteger(v.recentRevisions) && v.recentRevisions >= 0)
      ? undefined
      : 'the recent compaction is a whole number of revisions');
  if (problem) return problem;
  return {
    freeShare: v.freeShare ?? base.freeShare,
    minDbBytes: v.minDbBytes ?? base.minDbBytes,
    quotaShare: v.quotaShare ?? base.quotaShare,
    recentRevisions: v.recentRevisions ?? base.recentRevisions,
  };
}
