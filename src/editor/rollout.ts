/**
 * A certificate rollout as both Renew Certificates… and Rotate CA… run it: the rolling run with
 * progress and Cancel (the engine's lines in the log, the steps that matter in the
 * notification), and afterwards, whatever happened, the health refreshed and the deployed
 * certificates checked again so the tree shows what the hosts hold now.
 */
import { errorMessage } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import type { RunHooks } from '../core/plan/runner';
import type { SshContext } from '../core/ssh/hostSession';
import { Config } from './config';
import type { ExtensionCtx } from './ctx';
import { withCancellableProgress } from './progress';

/** Lines worth showing in the progress notification (the rest goes to the log). */
const PROGRESS = /^(rolling \d|move-leader|workspace:|phase \d|\s+\S+ healthy and caught up|error)/;

export async function rollOutCertificates<T>(
  ctx: ExtensionCtx,
  cluster: Cluster,
  ssh: SshContext,
  title: string,
  run: (hooks: Pick<RunHooks, 'signal' | 'onLine'>) => Promise<T>,
): Promise<T> {
  try {
    return await withCancellableProgress(title, (report, signal) =>
      run({
        signal,
        onLine: (h, l) => {
          ctx.log.info(`[${h}] ${l}`);
          if (PROGRESS.test(l)) report(`${h}: ${l.trim()}`);
        },
      }),
    );
  } finally {
    void ctx.health.refreshAll();
    void withCancellableProgress(
      `Checking the certificates on the hosts of ${cluster.name}`,
      (_r, signal) => ctx.certsChecks.check(cluster, ssh, Config.certificatesWarnDays(), signal),
    ).then(undefined, (err: unknown) =>
      ctx.log.warn(`certificate check after "${title}": ${errorMessage(err)}`),
    );
  }
}
