/**
 * Quorum: how many voters a cluster needs, and whether a change keeps it. Every guard that
 * would take a member away (member remove, a repair's restart) asks here.
 */

/** The votes a cluster of `voters` needs to elect a leader and commit (a majority). */
export function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** A verdict, with the reason in words. */
export interface QuorumVerdict {
  ok: boolean;
  why: string;
}

/** Quorum after removing one voter of `voters`, healthy `healthyVoters` of them. */
export function quorumAfterRemoval(
  voters: number,
  healthyVoters: number,
  removedHealthy: boolean,
): QuorumVerdict {
  const after = voters - 1;
  const healthyAfter = healthyVoters - (removedHealthy ? 1 : 0);
  const quorum = quorumOf(after);
  if (after === 0)
    return { ok: false, why: 'it is the last member: removing it would delete the cluster' };
  if (healthyAfter < quorum) {
    return {
      ok: false,
      why: `after removal ${healthyAfter} of ${after} members would be healthy, below the quorum of ${quorum}`,
    };
  }
  return { ok: true, why: `${healthyAfter} of ${after} members stay healthy (quorum ${quorum})` };
}

/**
 * Quorum while `member` restarts (a repair): the other voters that answer must be a quorum of all
 * `voters`; a single-member cluster is repaired through itself.
 */
export function quorumDuringRestart(
  voters: number,
  healthyOthers: number,
  member: string,
): QuorumVerdict {
  const need = quorumOf(voters);
  return healthyOthers >= need
    ? {
        ok: true,
        why: `${healthyOthers} of the other ${voters - 1} members are healthy (quorum ${need})`,
      }
    : {
        ok: false,
        why: `only ${healthyOthers} of the other ${voters - 1} members are healthy (quorum ${need}): restarting ${member} would leave the cluster without quorum`,
      };
}
