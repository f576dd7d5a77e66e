/**
 * What a failed restore undoes, phase by phase. Before any data dir is replaced (prepare, stop,
 * restore) etcd is started again on its old data everywhere; once data dirs are swapped nothing
 * is undone: the old data dirs stay kept and the journal of each failed host is shown.
 */
import { CancelledError, K3sEtcdError, errorMessage } from '../errors';
import type { HostRun, HostTransport } from '../plan/runner';
import { journalTail as journalLines } from '../plan/snippets';
import { shellQuote as q } from '../ssh/quote';
import type { RestoreTarget } from './phases';
import type { RestorePlan } from './plan';

export const failed = (r: HostRun) => r.status === 'failed' || r.status === 'cancelled';

export const failures = (runs: HostRun[]) =>
  runs
    .filter(failed)
    .map((r) => r.error?.message ?? `${r.host}: ${r.status}`)
    .join('; ');

export async function journalTail(t: HostTransport): Promise<string> {
  const r = await t.exec(journalLines('etcd', 15), { sudo: true }).catch(() => undefined);
  return (r?.stdout ?? '').trim();
}

/** After a failure before any data dir was replaced: etcd started again on its old data. */
export async function startAgain(
  targets: RestoreTarget[],
  plan: RestorePlan,
  say: (host: string, line: string) => void,
): Promise<string[]> {
  const results = await Promise.all(
    targets.map(async ({ host, t }) => {
      const restored = plan.members.find((m) => m.host === host.name)?.restoredDir;
      const r = await t
        .exec(
          `${restored ? `rm -rf ${q(restored)}; ` : ''}systemctl reset-failed etcd 2>/dev/null || true; systemctl start --no-block etcd`,
          { sudo: true },
        )
        .catch((err: unknown) => ({ code: 1, stdout: '', stderr: errorMessage(err) }));
      const ok = r.code === 0;
      say(
        host.name,
        ok
          ? 'etcd started again on its old data (nothing was replaced)'
          : `could not start etcd again: ${r.stderr.trim()} (start it yourself: sudo systemctl start etcd)`,
      );
      return ok ? undefined : host.name;
    }),
  );
  return results.filter((h): h is string => h !== undefined);
}

/** The kept data dirs: hosts whose `aside` step moved the old data dir away in `started`. */
export function keptDataDirs(
  targets: RestoreTarget[],
  plan: RestorePlan,
  started: HostRun[],
): { host: string; path: string }[] {
  return targets
    .filter(({ host, plans }) => {
      const aside = plans.start.steps.findIndex((s) => s.id === 'aside') + 1;
      const r = started.find((x) => x.host === host.name);
      return r?.steps.some((s) => s.n === aside && s.status === 'changed');
    })
    .map(({ host }) => ({
      host: host.name,
      path: plan.members.find((m) => m.host === host.name)?.keptAs ?? '',
    }));
}

/**
 * A phase failed on some host: undo what the policy says and throw what happened. Before the
 * stop nothing ran; after the stop or the restore etcd starts again on its old data; after the
 * start (data dirs swapped) nothing is undone and the failed hosts' journals are shown.
 */
export async function failedPhase(
  phase: 'prepare' | 'stop' | 'restore' | 'start',
  runs: HostRun[],
  ctx: {
    targets: RestoreTarget[];
    plan: RestorePlan;
    say: (host: string, line: string) => void;
    signal?: AbortSignal;
  },
): Promise<never> {
  const { targets, plan, say, signal } = ctx;
  if (phase === 'prepare') {
    if (signal?.aborted) throw new CancelledError('Restore');
    throw new K3sEtcdError(
      'restore-refused',
      `The restore stopped before etcd was stopped anywhere: ${failures(runs)}. etcd runs on as before.`,
    );
  }
  if (phase === 'stop' || phase === 'restore') {
    const notStarted = await startAgain(targets, plan, say);
    if (signal?.aborted) throw new CancelledError('Restore');
    const except =
      notStarted.length > 0 ? `, except on ${notStarted.join(', ')}: start it there` : '';
    throw new K3sEtcdError(
      'restore-failed',
      phase === 'stop'
        ? `etcd could not be stopped on every member (${failures(runs)}): the restore did not go on, etcd was started again on its old data${except}. Nothing was replaced.`
        : `The snapshot could not be restored on every member (${failures(runs)}): no data dir was replaced, and etcd was started again on its old data${except}.`,
    );
  }
  const kept = keptDataDirs(targets, plan, runs);
  const tails = await Promise.all(
    targets
      .filter(({ host }) => runs.some((r) => r.host === host.name && failed(r)))
      .map(
        async ({ host, t }) => `--- journalctl -u etcd on ${host.name}:\n${await journalTail(t)}`,
      ),
  );
  throw new K3sEtcdError(
    'restore-failed',
    `etcd did not start on the restored data on every member: ${failures(runs)}. The old data dirs are kept (${kept.map((k) => `${k.host}: ${k.path}`).join(', ') || 'none was moved'}).\n${tails.join('\n')}`,
  );
}
