/**
 * What the backup hosts hold (the CLI's `backup status`), read over SSH on demand only: after Run
 * Backup Now, Show Backup Status, a Set Up Backups… task that ended well, and the Backups node's
 * Refresh. Never on a timer (SSH may prompt), never in Restricted Mode. One read per cluster at a
 * time; the last state stays for the tree.
 */
import * as vscode from 'vscode';
import { backupStatus, type BackupStatus } from '../core/backup/status';
import { errorMessage, isCancelled } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import type { SshContext } from '../core/ssh/hostSession';
import type { BackupState } from '../core/tree/model';
import type { TrustGuard } from './trust';

export class BackupService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose backup state changed. */
  readonly onDidChange = this.changed.event;
  private readonly map = new Map<string, BackupState>();
  private readonly reads = new Map<string, Promise<BackupStatus>>();

  constructor(
    private readonly trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  states(): ReadonlyMap<string, BackupState> {
    return this.map;
  }

  /** Reads `cluster`'s backup hosts (a read already running is awaited, not started twice). */
  read(cluster: Cluster, ssh: SshContext, signal?: AbortSignal): Promise<BackupStatus> {
    this.trust.require('Reading the backups on the hosts');
    const running = this.reads.get(cluster.name);
    if (running) return running;
    const before = this.map.get(cluster.name);
    this.map.set(cluster.name, { ...(before ?? { at: Date.now() }), reading: true });
    this.changed.fire(cluster.name);
    const p = this.run(cluster, ssh, signal).finally(() => {
      this.reads.delete(cluster.name);
      // A cancelled read leaves what was known before it.
      const now = this.map.get(cluster.name);
      if (now?.reading) {
        if (before) this.map.set(cluster.name, before);
        else this.map.delete(cluster.name);
        this.changed.fire(cluster.name);
      }
    });
    this.reads.set(cluster.name, p);
    return p;
  }

  /** Keeps a status read elsewhere (the same as a read). */
  set(cluster: string, status: BackupStatus): void {
    this.map.set(cluster, { at: Date.now(), status });
    this.changed.fire(cluster);
  }

  private async run(cluster: Cluster, ssh: SshContext, signal?: AbortSignal) {
    try {
      const status = await backupStatus(cluster, { ssh, ...(signal ? { signal } : {}) });
      this.log.info(
        `backups of ${cluster.name}: ${status.backups.length} backup(s), ${status.problems.length === 0 ? 'fresh' : `not fresh: ${status.problems.join('; ')}`}`,
      );
      this.set(cluster.name, status);
      return status;
    } catch (err) {
      if (!isCancelled(err)) {
        this.map.set(cluster.name, { at: Date.now(), error: errorMessage(err) });
        this.changed.fire(cluster.name);
      }
      throw err;
    }
  }

  dispose(): void {
    this.changed.dispose();
  }
}
