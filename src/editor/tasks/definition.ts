/** The `k3s-etcd` task type: its definition (tasks.json) and what a task runs. */
import type * as vscode from 'vscode';
import type { RestorePlan } from '../../core/restore/plan';
import type { HostRun, RunHooks } from '../../core/plan/runner';

export const TASK_TYPE = 'k3s-etcd';

export type TaskOperationName =
  'provision-etcd' | 'install-k3s' | 'restore-etcd' | 'maintain-timer' | 'backup-install';

export const OPERATIONS: readonly TaskOperationName[] = [
  'provision-etcd',
  'install-k3s',
  'restore-etcd',
  'maintain-timer',
  'backup-install',
];

export interface K3sEtcdTaskDefinition extends vscode.TaskDefinition {
  type: typeof TASK_TYPE;
  operation: TaskOperationName;
  cluster: string;
  host?: string;
  /** restore-etcd: the snapshot (.db), absolute or relative to the inventory's folder. */
  snapshot?: string;
  /** maintain-timer: systemd OnCalendar of the timer (default daily at 03:17). */
  onCalendar?: string;
  /**
   * maintain-timer: take the timer away instead (its reports stay). backup-install: take the
   * backup timer and the receivers' keys away instead (the backups stay).
   */
  remove?: boolean;
}

/** What a task runs: a dry run, then (after the modal) the real run, with hooks. */
export interface TaskOperation {
  what: string;
  apply: string;
  detail(changes: number, hosts: string[]): string;
  /** Confirmed before the task started (a modal naming what happens): runs without asking. */
  confirmed?: boolean;
  /** Which hosts run here (this window's host, in this terminal) and which over SSH. */
  placement?: string[];
  /** Called once the task is over (ends the root shell of this window's host). */
  dispose?(): void;
  run(dryRun: boolean, hooks: RunHooks): Promise<{ runs: HostRun[]; ok: boolean; lines: string[] }>;
}

/**
 * A restore the person confirmed in the editor's modal ("Restore etcd from Snapshot…"): the
 * task is given the plan it showed (same kept-dir names) and runs it without asking again.
 */
export type ConfirmedRestore = RestorePlan;
