/**
 * What the backup hosts hold (the CLI's `backup status`), read over SSH on demand only: after Run
 * Backup Now, Show Backup Status, a Set Up Backups… task that ended well, and the Backups node's
 * Refresh (onDemandReads.ts: never on a timer, never in Restricted Mode, one read at a time).
 */
import type * as vscode from 'vscode';
import { backupStatus, type BackupStatus } from '../core/backup/status';
import type { Cluster } from '../core/inventory/types';
import type { SshContext } from '../core/ssh/hostSession';
import { OnDemandReads } from './onDemandReads';
import type { TrustGuard } from './trust';

export class BackupService extends OnDemandReads<BackupStatus> {
  constructor(
    trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super(trust, 'Reading the backups on the hosts');
  }

  /** Reads `cluster`'s backup hosts (a read already running is awaited, not started twice). */
  read(cluster: Cluster, ssh: SshContext, signal?: AbortSignal): Promise<BackupStatus> {
    return this.start(cluster.name, async () => {
      const status = await backupStatus(cluster, { ssh, ...(signal ? { signal } : {}) });
      this.log.info(
        `backups of ${cluster.name}: ${status.backups.length} backup(s), ${status.problems.length === 0 ? 'fresh' : `not fresh: ${status.problems.join('; ')}`}`,
      );
      return status;
    });
  }
}
