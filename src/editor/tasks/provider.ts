/**
 * Provisioning as VS Code tasks (`type: k3s-etcd`, with operation, cluster and host): a
 * `CustomExecution` whose pseudoterminal streams each host's lines with step markers and ends
 * with the exit code. Hosts run over SSH, except the inventory host this window runs on (any
 * remote kind, `./here.ts`): its steps run in this terminal as root through sudo, which asks
 * for the password there.
 * `restore-etcd` restores a snapshot onto every member the same way; started by "Restore etcd
 * from Snapshot…" after its modal it is given that confirmation and runs at once (the CLI's
 * `--yes`), otherwise it shows the dry run and asks first. In Restricted Mode no task is
 * offered, and one run anyway (from tasks.json) says why and ends with exit 1 before anything
 * connects.
 */
import * as vscode from 'vscode';
import { basename } from 'node:path';
import { etcdHosts, k3sServers } from '../../core/inventory/select';
import type { ExtensionCtx } from '../ctx';
import {
  OPERATIONS,
  TASK_TYPE,
  type ConfirmedRestore,
  type K3sEtcdTaskDefinition,
  type TaskOperationName,
} from './definition';
import { ProvisionTerminal } from './terminal';

/**
 * The task of `def`. `confirmed`: the restore the editor's modal confirmed, handed to this task
 * alone and taken once (a re-run of the task asks).
 */
export function provisionTask(
  ctx: ExtensionCtx,
  def: K3sEtcdTaskDefinition,
  scope: vscode.WorkspaceFolder | vscode.TaskScope = vscode.TaskScope.Workspace,
  confirmed?: ConfirmedRestore,
): vscode.Task {
  let once = confirmed;
  const verb =
    def.operation === 'install-k3s'
      ? 'install K3s'
      : def.operation === 'restore-etcd'
        ? `restore etcd from ${basename(def.snapshot ?? 'a snapshot')}`
        : def.operation === 'maintain-timer'
          ? def.remove
            ? 'remove the maintenance timer'
            : 'schedule maintenance'
          : def.operation === 'backup-install'
            ? def.remove
              ? 'remove the backup timer'
              : 'set up backups'
            : 'provision etcd';
  const name = def.host ? `${verb} on ${def.host} (${def.cluster})` : `${verb} (${def.cluster})`;
  const task = new vscode.Task(
    def,
    scope,
    name,
    'k3s-etcd',
    new vscode.CustomExecution(async (resolved) => {
      const d = resolved as K3sEtcdTaskDefinition;
      const given = once;
      once = undefined;
      return new ProvisionTerminal(ctx, d, given);
    }),
  );
  task.presentationOptions = {
    reveal: vscode.TaskRevealKind.Always,
    panel: vscode.TaskPanelKind.Dedicated,
    clear: true,
  };
  return task;
}

export function registerProvisionTasks(ctx: ExtensionCtx): void {
  ctx.push(
    vscode.tasks.registerTaskProvider(TASK_TYPE, {
      // In Restricted Mode there are no tasks to offer; one from tasks.json refuses when run.
      provideTasks: () => {
        if (!ctx.trust.trusted) return [];
        const inv = ctx.inventory.current();
        if (inv?.status !== 'ok') return [];
        return inv.inventory.clusters.flatMap((c) => [
          provisionTask(ctx, { type: TASK_TYPE, operation: 'provision-etcd', cluster: c.name }),
          ...etcdHosts(c).map((h) =>
            provisionTask(ctx, {
              type: TASK_TYPE,
              operation: 'provision-etcd',
              cluster: c.name,
              host: h.name,
            }),
          ),
          ...(k3sServers(c).length > 0
            ? [provisionTask(ctx, { type: TASK_TYPE, operation: 'install-k3s', cluster: c.name })]
            : []),
        ]);
      },
      resolveTask: (task) => {
        const def = task.definition as K3sEtcdTaskDefinition;
        if (def.type !== TASK_TYPE || !OPERATIONS.includes(def.operation) || !def.cluster)
          return undefined;
        return provisionTask(ctx, def, task.scope ?? vscode.TaskScope.Workspace);
      },
    }),
  );
}

/** Runs the task for a cluster or host (this window's host in the task's terminal, others over SSH). */
export async function runProvisionTask(
  ctx: ExtensionCtx,
  cluster: string,
  host?: string,
  operation: TaskOperationName = 'provision-etcd',
  extra: Pick<K3sEtcdTaskDefinition, 'onCalendar' | 'remove'> = {},
): Promise<void> {
  const def: K3sEtcdTaskDefinition = {
    type: TASK_TYPE,
    operation,
    cluster,
    ...(host ? { host } : {}),
    ...extra,
  };
  await vscode.tasks.executeTask(provisionTask(ctx, def));
}

/**
 * Runs the restore of `plan` as a task, after the editor's modal confirmed it (the task then
 * runs at once with that plan, like the CLI's `--yes`).
 */
export async function runConfirmedRestoreTask(
  ctx: ExtensionCtx,
  plan: ConfirmedRestore,
): Promise<void> {
  await vscode.tasks.executeTask(
    provisionTask(
      ctx,
      { type: TASK_TYPE, operation: 'restore-etcd', cluster: plan.cluster, snapshot: plan.file },
      vscode.TaskScope.Workspace,
      plan,
    ),
  );
}
