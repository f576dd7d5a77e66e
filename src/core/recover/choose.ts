/**
 * What a quorum recovery knows of each member (`detect.ts` gathers it), and the survivor chosen
 * from it: pure, so the rule is tested over tables.
 *
 * The rule: the most advanced member that answers `endpoint status` (served without quorum):
 * the highest raft index, then term, then revision. A member that is down but whose data dir is
 * there is compared by its database's revision (read on its host): it is chosen only when that
 * revision is ahead of every answering member's. A member with a data dir whose revision could
 * not be read refuses the choice, by name, unless one is given (`--member`): it may be ahead. A
 * member chosen by name is refused when another is more advanced, naming which and by how much.
 * Learners are never chosen (their log may lag and they had no vote).
 */
import { K3sEtcdError } from '../errors';

/** `endpoint status` of a member: etcd serves it from the member itself, quorum or not. */
export interface SeenStatus {
  /** Member ID (hex). */
  id: string;
  raftIndex: string;
  raftTerm: string;
  revision: string;
  /** The leader it knows (hex), '0' or '' when it has none. */
  leader: string;
  isLearner: boolean;
  /** etcd's own errors (e.g. "etcdserver: no leader"). */
  errors: string[];
}

/** What the member's host says over SSH. */
export interface SeenOnHost {
  /** systemd's ActiveState of etcd.service (active, inactive, failed, activating, ...). */
  activeState: string;
  /** When it last became active / inactive, as systemd words it ('' when never). */
  activeSince: string;
  inactiveSince: string;
  /** `<dataDir>/member` exists. */
  hasData: boolean;
  /** The revision of `<dataDir>/member/snap/db` (read from a copy), when etcd could not say. */
  dbRevision?: string;
  /** Why the database's revision could not be read. */
  dbProblem?: string;
}

export interface MemberSeen {
  host: string;
  member: string;
  address: string;
  endpoint: string;
  status?: SeenStatus;
  statusProblem?: string;
  onHost?: SeenOnHost;
  sshProblem?: string;
}

export interface QuorumSeen {
  /** A member served a quorum read: the cluster has a leader and a majority. */
  ok: boolean;
  why: string;
}

export interface Detection {
  cluster: string;
  at: string;
  members: MemberSeen[];
  quorum: QuorumSeen;
}

export interface SurvivorChoice {
  survivor: MemberSeen;
  /** Why this one, in words. */
  why: string;
}

const big = (s: string | undefined): bigint => (s && /^\d{1,20}$/.test(s) ? BigInt(s) : -1n);

/** The revision a member's data is at: what it serves, else its database's on the host. */
export function revisionOf(m: MemberSeen): bigint {
  return m.status ? big(m.status.revision) : big(m.onHost?.dbRevision);
}

/** A member that answers status and is a voter. */
const answering = (m: MemberSeen) => m.status !== undefined && !m.status.isLearner;
/** A member down with data whose database revision was read. */
const downWithData = (m: MemberSeen) =>
  m.status === undefined && m.onHost?.hasData === true && revisionOf(m) >= 0n;

/**
 * How far `a` is ahead of `b` (positive: ahead), and the words for it. Both answering: raft
 * index, then term, then revision; otherwise revision only (a stopped member has no raft index
 * that can be read reliably).
 */
export function compareProgress(a: MemberSeen, b: MemberSeen): { diff: number; words: string } {
  if (a.status && b.status) {
    const keys: [string, bigint, bigint][] = [
      ['raft index', big(a.status.raftIndex), big(b.status.raftIndex)],
      ['raft term', big(a.status.raftTerm), big(b.status.raftTerm)],
      ['revision', big(a.status.revision), big(b.status.revision)],
    ];
    for (const [what, x, y] of keys) {
      if (x !== y) {
        const n = x > y ? x - y : y - x;
        const unit =
          what === 'raft index'
            ? `raft entr${n === 1n ? 'y' : 'ies'}`
            : what === 'raft term'
              ? `term${n === 1n ? '' : 's'}`
              : `revision${n === 1n ? '' : 's'}`;
        return { diff: x > y ? 1 : -1, words: `${n} ${unit} (${what} ${x} vs ${y})` };
      }
    }
    return { diff: 0, words: 'level (same raft index, term and revision)' };
  }
  const x = revisionOf(a);
  const y = revisionOf(b);
  if (x === y) return { diff: 0, words: `level (revision ${x})` };
  const n = x > y ? x - y : y - x;
  return {
    diff: x > y ? 1 : -1,
    words: `${n} revision${n === 1n ? '' : 's'} (revision ${x} vs ${y})`,
  };
}

/** Where a member's progress is, in words. */
export function progressWords(m: MemberSeen): string {
  if (m.status)
    return `raft index ${m.status.raftIndex}, term ${m.status.raftTerm}, revision ${m.status.revision}`;
  if (m.onHost?.dbRevision) return `down; its database is at revision ${m.onHost.dbRevision}`;
  return 'down';
}

const refuse = (message: string) => new K3sEtcdError('recover-refused', message);

/**
 * The survivor: the most advanced member (see the file's comment), or the one `requested` (host
 * or member name) unless another is ahead. Throws `recover-refused` with the reason.
 */
export function chooseSurvivor(members: readonly MemberSeen[], requested?: string): SurvivorChoice {
  const byProgress = (a: MemberSeen, b: MemberSeen) => -compareProgress(a, b).diff;
  const up = members.filter(answering).sort(byProgress);
  const down = members.filter(downWithData).sort(byProgress);
  const bestUp = up[0];
  const bestDown = down[0];
  const best =
    bestUp && bestDown
      ? compareProgress(bestDown, bestUp).diff > 0
        ? bestDown
        : bestUp
      : (bestUp ?? bestDown);
  if (requested !== undefined) {
    const m = members.find((x) => x.host === requested || x.member === requested);
    if (!m)
      throw refuse(
        `No member ${JSON.stringify(requested)} in the inventory (members: ${members.map((x) => x.host).join(', ')}).`,
      );
    if (m.status?.isLearner)
      throw refuse(
        `${m.host} is a learner: it had no vote and its log may lag. Choose a voter, or leave --member out to take the most advanced one.`,
      );
    if (!answering(m) && !downWithData(m))
      throw refuse(
        `${m.host} cannot be the survivor: ${m.onHost?.hasData === false ? 'it has no data dir' : `it does not answer and its database's revision could not be read (${m.statusProblem ?? m.sshProblem ?? m.onHost?.dbProblem ?? 'unknown'})`}. Leave --member out to take the most advanced member.`,
      );
    const ahead = [...up, ...down]
      .filter((x) => x !== m)
      .map((x) => ({ x, c: compareProgress(x, m) }))
      .filter(({ c }) => c.diff > 0);
    const first = ahead[0];
    if (first)
      throw refuse(
        `${m.host} is behind ${first.x.host}, which is ahead by ${first.c.words}: recovering from ${m.host} would lose those writes. Leave --member out (the most advanced member, ${best?.host ?? first.x.host}, is chosen), or bring ${m.host} up to date first.`,
      );
    return {
      survivor: m,
      why: `chosen with --member; no member is ahead of it (${progressWords(m)})`,
    };
  }
  if (!best)
    throw refuse(
      `No member can be recovered from: none answers \`endpoint status\` and no host has a data dir whose database could be read (${members.map((x) => `${x.host}: ${x.statusProblem ?? 'no answer'}${x.sshProblem ? `; SSH: ${x.sshProblem}` : x.onHost ? `; ${x.onHost.hasData ? (x.onHost.dbProblem ?? 'data unreadable') : 'no data dir'}` : ''}`).join('; ')}). Start etcd on a host that still has its data, or restore a snapshot (k3s-etcd snapshot restore).`,
    );
  // A member with data whose revision could not be read may be the most advanced: never pass
  // over it in silence.
  const unread = members.filter(
    (m) => m.status === undefined && m.onHost?.hasData === true && revisionOf(m) < 0n,
  );
  if (unread.length > 0)
    throw refuse(
      `${unread.map((m) => `${m.host} has a data dir but its database's revision could not be read (${m.onHost?.dbProblem ?? 'no database file read'})`).join('; ')}: ${unread.length === 1 ? 'it' : 'they'} may be ahead of ${best.host} (${progressWords(best)}), and recovering from ${best.host} would lose what only ${unread.length === 1 ? 'it holds' : 'they hold'}. Fix what stopped the read and run recover again, or give --member ${best.host} (k3s-etcd recover --member ${best.host}) to recover from it anyway (every other data dir is kept aside).`,
    );
  const rest = [...up, ...down].filter((x) => x !== best);
  const next = rest[0];
  const over = (x: MemberSeen) => {
    const c = compareProgress(best, x);
    return c.diff > 0 ? `ahead of ${x.host} by ${c.words}` : `${x.host} is ${c.words}`;
  };
  const why =
    best === bestDown && bestUp
      ? `it is down but its database is ahead of every member that answers (${compareProgress(best, bestUp).words} over ${bestUp.host})`
      : best.status
        ? `the most advanced member that answers${next ? ` (${over(next)})` : ''}`
        : `no member answers; its database is the most advanced on the hosts${next ? ` (${over(next)})` : ''}`;
  return { survivor: best, why };
}
