/**
 * `k3s-etcd backup run`: the timer's service started on every backup host now (it runs once;
 * one host takes the backup, hostScript.ts's elect, the others skip), then each host's last
 * run read back. `systemctl start` of a oneshot service returns when the run has ended.
 */
import { errorMessage } from '../errors';
import type { Cluster } from '../inventory/types';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { backupHosts, backupSettings, BACKUP_SERVICE } from './install';
import { parseListing, type LastRun } from './status';
import { shellQuote as q } from '../ssh/quote';

export interface BackupRunResult {
  runs: Array<{ host: string; lastRun?: LastRun; error?: string }>;
  /** The run that took the backup (not skipped), if any. */
  acted?: LastRun;
  ok: boolean;
}

export async function runBackupNow(
  cluster: Cluster,
  opts: { ssh: SshContext; signal?: AbortSignal; onLine?: (host: string, line: string) => void },
): Promise<BackupRunResult> {
  const b = backupSettings(cluster);
  const runs = await Promise.all(
    backupHosts(cluster).map(async (h) => {
      try {
        const t = await sshOpener(cluster, h, opts.ssh)(opts.signal);
        try {
          const started = await t.exec(`systemctl start ${BACKUP_SERVICE}`, {
            sudo: true,
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          if (started.code !== 0)
            opts.onLine?.(
              h.name,
              `systemctl start ${BACKUP_SERVICE}: exit ${started.code} ${started.stderr.trim()}`,
            );
          const r = await t.exec(
            `f=${q(`${b.localDir}/last-run.json`)}; [ -f "$f" ] && { echo '== last-run.json'; head -c 65536 "$f"; }`,
            { sudo: true, ...(opts.signal ? { signal: opts.signal } : {}) },
          );
          const lastRun = parseListing(r.stdout).lastRun;
          if (lastRun) opts.onLine?.(h.name, `${lastRun.result}: ${lastRun.summary}`);
          return { host: h.name, ...(lastRun ? { lastRun } : { error: 'no last run recorded' }) };
        } finally {
          t.close();
        }
      } catch (err) {
        return { host: h.name, error: errorMessage(err) };
      }
    }),
  );
  const acted = runs
    .map((r) => ('lastRun' in r ? r.lastRun : undefined))
    .filter((r): r is LastRun => !!r && r.result !== 'skipped')
    .sort((x, y) => (x.finishedAt < y.finishedAt ? 1 : -1))[0];
  return { runs, ...(acted ? { acted } : {}), ok: acted?.result === 'done' };
}
