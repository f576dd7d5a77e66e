/**
 * The rolling engine: every operation that restarts etcd members runs its host plans through it.
 *
 * Every host is read and its plan dry-run first, in parallel; the dry runs say which hosts would
 * restart etcd and why (`restarts.ts`). When no member answers (a new cluster) everything is
 * applied together, as before. When the cluster is live: hosts whose changes do not restart
 * etcd are applied first, together; then the members that restart go one at a time (members
 * already down first, followers next, the leader last after `move-leader` to a caught-up
 * follower). Before each one every other voter must be healthy, else the rollout is refused
 * naming who is not; its current files are copied aside on the host (`backup.ts`); after its
 * change it must answer healthy with its raft index close to the leader's before the next one
 * goes. The first failure stops the rollout: that member's previous files are put back and etcd
 * restarted on them, and the members after it are left untouched.
 */
import { errorMessage, type ErrorCode } from '../errors';
import {
  applyHostPlan,
  asHostRun,
  checkHostPlan,
  openAndPlan,
  type CheckedPlan,
  type HostJob,
  type HostRun,
  type HostTransport,
  type RunHooks,
} from '../plan/runner';
import {
  dropRollbackSet,
  keepPrevious,
  restoreRollbackSet,
  takeRollbackSet,
  type RollbackSet,
} from './backup';
import type { LiveCluster } from './live';
import {
  CAUGHT_UP_GAP,
  caughtUp,
  leaderTarget,
  mayRestart,
  nextMember,
  rollingOrder,
  type MemberRow,
} from './order';
import {
  restartFiles,
  restartReason,
  serviceStep,
  type RestartReason,
  type RollingPlan,
} from './restarts';

/** A host job and the etcd member it runs. */
export interface RollingJob extends HostJob {
  member: string;
}

export interface RollingOptions extends RunHooks {
  dryRun: boolean;
  /** The running cluster; undefined when no member answers (then all go together). */
  live?: { cluster: LiveCluster; table: MemberRow[] };
  /** Raft entries a restarted member may lag the leader (default CAUGHT_UP_GAP). */
  gap?: number;
  /** How long a restarted member may take to be healthy and caught up (default 90 s). */
  settleMs?: number;
  /**
   * Paths (of the files a member restarts on) whose previous version is kept as
   * `<path>.previous` once the member is healthy on the new one: an upgrade keeps the binaries.
   */
  keepPrevious?: readonly string[];
}

export interface RollingResult {
  runs: HostRun[];
  plan: RollingPlan;
}

interface Prepared {
  job: RollingJob;
  t?: HostTransport;
  checked?: CheckedPlan;
  /** Set when the host failed before or during its dry run. */
  run?: HostRun;
  restart?: RestartReason;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function prepare(job: RollingJob, opts: RunHooks): Promise<Prepared> {
  const p: Prepared = { job };
  const timings: Record<string, number> = {};
  const run = await asHostRun(job.host, opts, timings, async () => {
    const opened = await openAndPlan(job, opts, timings);
    p.t = opened.t;
    p.checked = await checkHostPlan(opened.t, opened.plan, opts, timings);
    return p.checked.run;
  });
  if (run.status === 'failed' || run.status === 'cancelled') p.run = run;
  else if (p.checked) {
    const why = restartReason(p.checked.plan, p.checked.run.steps);
    if (why) p.restart = why;
  }
  return p;
}

/** The plan the dry runs and the member table give. */
export function planRollout(
  prepared: ReadonlyArray<{ job: RollingJob; checked?: CheckedPlan; restart?: RestartReason }>,
  table: readonly MemberRow[] | undefined,
): RollingPlan {
  const restarting = prepared.filter((p) => p.restart);
  const filesOnly = prepared
    .filter((p) => !p.restart && p.checked?.run.status === 'would-change')
    .map((p) => p.job.host);
  const live = table !== undefined && table.some((r) => r.healthy);
  const byMember = new Map(restarting.map((p) => [p.job.member, p]));
  const members = restarting.map((p) => p.job.member);
  const order = live ? rollingOrder(table, members) : members;
  const role = (m: string): 'leader' | 'follower' | 'down' => {
    const row = table?.find((r) => r.name === m);
    return !row?.healthy ? 'down' : row.isLeader ? 'leader' : 'follower';
  };
  const plan: RollingPlan = {
    mode: live ? 'rolling' : 'together',
    order: order.map((m) => ({
      ...(byMember.get(m)?.restart as RestartReason),
      member: m,
      role: role(m),
    })),
    filesOnly,
  };
  const voters = table?.filter((r) => r.voter).length ?? 0;
  if (live && order.length > 0 && voters === 2) {
    plan.warning =
      'the cluster has only 2 voters: while one restarts the other alone is no quorum, so reads and writes fail for a few seconds at each restart (with 3 members a restart costs nothing)';
  }
  const first = order[0];
  if (live && first) {
    const v = mayRestart(table, first);
    if (!v.ok) plan.refusal = v.why;
  }
  return plan;
}

/** A run that never started on `host`, with the reason. */
function notStarted(host: string, message: string, code?: ErrorCode): HostRun {
  return {
    host,
    status: code === 'cancelled' ? 'cancelled' : 'failed',
    steps: [],
    error: { ...(code ? { code } : {}), message },
    timings: {},
  };
}

/** Polls until `member` is healthy and caught up with the leader, or the deadline. */
async function settle(
  live: LiveCluster,
  member: string,
  gap: number,
  ms: number,
  signal?: AbortSignal,
): Promise<{ ok: boolean; why: string }> {
  const until = Date.now() + ms;
  let why = '';
  for (;;) {
    try {
      const v = caughtUp(await live.probe(signal), member, gap);
      if (v.ok) return v;
      why = v.why;
    } catch (err) {
      why = errorMessage(err);
    }
    if (Date.now() > until || signal?.aborted) return { ok: false, why };
    await sleep(500);
  }
}

/** Runs the jobs: together on a new cluster, one restarting member at a time on a live one. */
export async function runRolling(jobs: RollingJob[], opts: RollingOptions): Promise<RollingResult> {
  const prepared = await Promise.all(jobs.map((j) => prepare(j, opts)));
  try {
    const plan = planRollout(prepared, opts.live?.table);
    const say = (host: string, line: string) => opts.onLine?.(host, line);
    const runs = new Map<string, HostRun>();
    const apply = async (p: Prepared): Promise<HostRun> => {
      if (p.run || !p.checked || !p.t) return p.run as HostRun;
      const t = p.t;
      const checked = p.checked;
      return asHostRun(p.job.host, opts, checked.run.timings, () =>
        applyHostPlan(t, checked, opts),
      );
    };
    if (opts.dryRun) {
      for (const p of prepared) runs.set(p.job.host, p.run ?? (p.checked as CheckedPlan).run);
      return { runs: jobs.map((j) => runs.get(j.host) as HostRun), plan };
    }
    const live = opts.live;
    const rolling = plan.mode === 'rolling' && live !== undefined;
    // Together: a new cluster, or hosts whose changes restart nothing.
    const together = rolling ? prepared.filter((p) => !p.restart) : prepared;
    for (const [i, run] of (await Promise.all(together.map(apply))).entries())
      runs.set((together[i] as Prepared).job.host, run);
    if (rolling) {
      await rollOut(
        prepared.filter((p) => p.restart),
        live.cluster,
        runs,
        opts,
        say,
      );
    }
    return { runs: jobs.map((j) => runs.get(j.host) as HostRun), plan };
  } finally {
    for (const p of prepared) p.t?.close();
  }
}

async function rollOut(
  restarting: Prepared[],
  live: LiveCluster,
  runs: Map<string, HostRun>,
  opts: RollingOptions,
  say: (host: string, line: string) => void,
): Promise<void> {
  const gap = opts.gap ?? CAUGHT_UP_GAP;
  const settleMs = opts.settleMs ?? 90_000;
  const left = restarting.map((p) => p.job.member);
  const done: string[] = [];
  const stop = (reason: string, code?: ErrorCode) => {
    for (const m of left) {
      const p = restarting.find((x) => x.job.member === m) as Prepared;
      if (runs.has(p.job.host)) continue;
      const message = `${p.job.host}: not started: ${reason}`;
      say(p.job.host, message);
      runs.set(p.job.host, notStarted(p.job.host, message, code));
    }
  };
  let n = 0;
  const total = left.length;
  while (left.length > 0) {
    if (opts.signal?.aborted) return stop('cancelled', 'cancelled');
    let table: MemberRow[];
    try {
      table = await live.probe(opts.signal);
    } catch (err) {
      return stop(`the cluster did not answer: ${errorMessage(err)}`);
    }
    const member = nextMember(table, left);
    left.splice(left.indexOf(member), 1);
    const p = restarting.find((x) => x.job.member === member) as Prepared;
    const host = p.job.host;
    n++;
    const verdict = mayRestart(table, member);
    if (!verdict.ok) {
      const message = `${host}: ${verdict.why}. Nothing was changed on it.`;
      say(host, message);
      runs.set(host, notStarted(host, message, 'provision-refused'));
      return stop(`the rollout stopped at ${member}`);
    }
    const row = table.find((r) => r.name === member);
    const role = !row?.healthy ? 'down' : row.isLeader ? 'leader' : 'follower';
    say(host, `rolling ${n}/${total}: ${member} (${role}): ${verdict.why}`);
    const others = table.filter((r) => r.voter && r.name !== member);
    if (row?.isLeader && others.length > 0) {
      const target = leaderTarget(table, done, gap);
      if (!target) {
        const message = `${host}: ${member} leads and no other voter is caught up to take over: nothing was changed on it`;
        runs.set(host, notStarted(host, message, 'provision-refused'));
        say(host, message);
        return stop(`the rollout stopped at ${member}`);
      }
      try {
        say(host, `move-leader: ${member} → ${target.name}`);
        await live.moveLeader(row, target, opts.signal);
      } catch (err) {
        const message = `${host}: ${errorMessage(err)}: nothing was changed on it`;
        runs.set(host, notStarted(host, message, 'etcd-unreachable'));
        say(host, message);
        return stop(`the rollout stopped at ${member}`);
      }
    }
    const ok = await restartOne(p, gap, settleMs, live, runs, opts, say);
    if (!ok) return stop(`the rollout stopped at ${member}, which failed`);
    done.push(member);
  }
}

/** One member: copy its files aside, apply, wait until caught up; on failure put them back. */
async function restartOne(
  p: Prepared,
  gap: number,
  settleMs: number,
  live: LiveCluster,
  runs: Map<string, HostRun>,
  opts: RollingOptions,
  say: (host: string, line: string) => void,
): Promise<boolean> {
  const host = p.job.host;
  const member = p.job.member;
  const t = p.t as HostTransport;
  const checked = p.checked as CheckedPlan;
  const unit = serviceStep(checked.plan)?.unit ?? 'etcd';
  let set: RollbackSet;
  try {
    set = await takeRollbackSet(t, host, restartFiles(checked.plan), unit, opts.signal);
  } catch (err) {
    const message = errorMessage(err);
    say(host, message);
    runs.set(host, notStarted(host, message, 'provision-step-failed'));
    return false;
  }
  say(
    host,
    `    kept a copy of ${set.paths.length} file(s) in ${set.folder} (put back if the change fails)`,
  );
  let run = await asHostRun(host, opts, checked.run.timings, () => applyHostPlan(t, checked, opts));
  if (run.status !== 'failed' && run.status !== 'cancelled') {
    const s = await settle(live, member, gap, settleMs, opts.signal);
    if (s.ok) {
      say(host, `    ${member} healthy and caught up: ${s.why}`);
      if (opts.keepPrevious && opts.keepPrevious.length > 0) {
        try {
          for (const l of await keepPrevious(t, host, set, opts.keepPrevious)) say(host, l);
        } catch (err) {
          say(host, `    warning: ${errorMessage(err)}`);
        }
      }
      runs.set(host, run);
      await dropRollbackSet(t, set);
      return true;
    }
    run = {
      ...run,
      status: 'failed',
      error: {
        code: 'provision-step-failed',
        message: `${host}: ${member} was changed but is not healthy and caught up within ${Math.round(settleMs / 1000)} s: ${s.why}`,
      },
    };
  }
  // Put the previous files back and restart etcd on them.
  say(host, `${run.error?.message ?? 'failed'}: putting its previous files back`);
  let after: string;
  try {
    await restoreRollbackSet(t, host, set, (l) => say(host, l));
    const s = await settle(live, member, gap, settleMs, opts.signal);
    after = s.ok
      ? `its previous files were put back and etcd restarted on them: ${member} is healthy again`
      : `its previous files were put back and etcd restarted on them, but ${member} is not healthy yet: ${s.why}`;
    if (s.ok) await dropRollbackSet(t, set);
  } catch (err) {
    after = errorMessage(err);
  }
  say(host, `    ${after}`);
  runs.set(host, {
    ...run,
    status: 'failed',
    error: {
      ...(run.error?.code ? { code: run.error.code } : {}),
      ...(run.error?.step ? { step: run.error.step } : {}),
      message: `${run.error?.message ?? `${host}: failed`} (${after})`,
    },
  });
  return false;
}
