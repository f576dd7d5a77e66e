/**
 * Activation: builds the one context object and calls the feature registrars. VS Code shows
 * nothing when activation throws, so failures are caught and shown here.
 */
import * as vscode from 'vscode';
import type { InventoryLoadResult } from '../core/inventory/types';
import { listMembers, type EtcdMember } from '../core/etcd/members';
import type { TreeNode } from '../core/tree/model';
import { BackupService } from './backupService';
import { CertsCheckService } from './certsCheckService';
import { registerCommands } from './commands/registerCommands';
import type { ExtensionCtx } from './ctx';
import { HealthService } from './healthService';
import { MetricsService } from './metricsService';
import { K3sStateService } from './k3sStateService';
import { registerSnapshotSchedule } from './snapshotScheduler';
import { InventoryService } from './inventoryService';
import { PerfService } from './perfService';
import { KeyspaceService } from './keyspaceService';
import { registerProvisionTasks } from './tasks/provider';
import { registerTree } from './tree/clusterTree';
import { TrustGuard } from './trust';
import { registerWalkthroughProgress } from './walkthrough';

declare const globalThis: { __k3sEtcdLoadStart?: number };
const loadStart = globalThis.__k3sEtcdLoadStart ?? performance.now();
const loadEnd = performance.now();

/** What `activate` returns: used by tests and by other extensions. */
export interface K3sEtcdApi {
  readonly tree: vscode.TreeDataProvider<TreeNode>;
  whenInventoryLoaded(): Promise<InventoryLoadResult>;
  listMembers(endpoints: string[]): Promise<EtcdMember[]>;
  /** Our share of activation: bundle load plus activate() until the tree's first data. */
  readonly activationMs: number;
}

export async function activate(context: vscode.ExtensionContext): Promise<K3sEtcdApi | undefined> {
  const activateStart = performance.now();
  const log = vscode.window.createOutputChannel('K3s etcd', { log: true });
  context.subscriptions.push(log);
  try {
    const trust = new TrustGuard();
    const inventory = new InventoryService(log);
    const health = new HealthService(inventory, trust, log, context.workspaceState, loadStart);
    const metrics = new MetricsService(inventory, trust, log);
    const perf = new PerfService(inventory, trust, log);
    const k3s = new K3sStateService();
    const keyspace = new KeyspaceService(trust, log);
    const backups = new BackupService(trust, log);
    const certsChecks = new CertsCheckService(trust, log);
    const ctx: ExtensionCtx = {
      vscodeContext: context,
      log,
      trust,
      inventory,
      health,
      metrics,
      perf,
      k3s,
      keyspace,
      backups,
      certsChecks,
      push: (...d) => context.subscriptions.push(...d),
    };
    ctx.push(trust, inventory, health, metrics, perf, k3s, keyspace, backups, certsChecks);
    const tree = registerTree(ctx);
    registerCommands(ctx);
    registerProvisionTasks(ctx);
    registerSnapshotSchedule(ctx);
    registerWalkthroughProgress(ctx);
    if (!trust.trusted)
      log.info(
        'Restricted Mode: the inventory is shown, nothing connects until the workspace is trusted',
      );
    ctx.push(trust.onDidGrant(() => log.info('Workspace trusted: live state and schedules start')));
    const registered = performance.now();
    inventory.start();
    await inventory.whenLoaded();
    const done = performance.now();
    // Our own time, as VS Code counts activation: loading the bundle plus activate() until the
    // tree has data. The gap between the two is VS Code building the extension context.
    const activationMs = loadEnd - loadStart + (done - activateStart);
    const ms = (a: number, b: number) => (b - a).toFixed(1);
    log.info(
      `Activated in ${activationMs.toFixed(1)} ms (bundle ${ms(loadStart, loadEnd)}, ` +
        `register ${ms(activateStart, registered)}, inventory ${ms(registered, done)}; ` +
        `VS Code context set-up ${ms(loadEnd, activateStart)} ms)`,
    );
    return {
      tree,
      activationMs,
      whenInventoryLoaded: () => inventory.whenLoaded(),
      listMembers: (endpoints) => listMembers(endpoints),
    };
  } catch (err) {
    log.error('Activation failed', err);
    void vscode.window
      .showErrorMessage(
        `K3s etcd failed to start: ${err instanceof Error ? err.message : String(err)}`,
        'Open Log',
      )
      .then((c) => c && log.show());
    return undefined;
  }
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
