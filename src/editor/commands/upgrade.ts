/** Upgrade etcd of a running cluster (the CLI's `upgrade --to VERSION`). */
import * as vscode from 'vscode';
import { DEFAULT_ETCD_VERSION, parseEtcdVersion } from '../../core/etcdRelease/version';
import type { TreeNode } from '../../core/tree/model';
import { upgradeLines } from '../../core/upgrade/plan';
import { snapshotFolder, upgradeEtcd } from '../../core/upgrade/run';
import type { ExtensionCtx } from '../ctx';
import { resolveCluster, workspaceDir } from '../pick';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';

export function upgradeEtcdCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const to = await vscode.window.showInputBox({
      title: `Upgrade etcd of ${cluster.name}`,
      prompt: `The etcd version to upgrade to (k3s-etcd.yaml says ${cluster.etcd.version}). The path goes one minor at a time.`,
      value: DEFAULT_ETCD_VERSION,
      ignoreFocusOut: true,
      validateInput: (v) =>
        parseEtcdVersion(v.trim()) ? undefined : 'An etcd version such as v3.6.14',
    });
    if (to === undefined) return;
    const ssh = await editorSshContext(ctx);
    const common = {
      to: to.trim(),
      ssh,
      workspaceDir: workspaceDir(ctx),
      inventoryFile: (ctx.inventory.current() as { file: string }).file,
    };
    const preview = await withCancellableProgress(
      `Planning the upgrade of ${cluster.name}`,
      (_r, signal) => upgradeEtcd(cluster, { ...common, dryRun: true, signal }),
    );
    const lines = upgradeLines(preview.plan, {
      snapshotDir: snapshotFolder(cluster),
      rolling: preview.hops.map((h) => h.rolling),
    });
    ctx.log.info(`upgrade preview of ${cluster.name}:\n${lines.join('\n')}`);
    if (preview.plan.hops.length === 0) {
      void vscode.window.showInformationMessage(lines[0] ?? 'Nothing to upgrade.');
      return;
    }
    const failed = preview.hops
      .flatMap((h) => h.runs)
      .filter((r) => r.status === 'failed' || r.status === 'cancelled');
    if (failed.length > 0)
      throw new Error(
        `The upgrade cannot start: ${failed.map((r) => r.error?.message ?? `${r.host} failed`).join('; ')}`,
      );
    const choice = await vscode.window.showWarningMessage(
      `Upgrade etcd of ${cluster.name} to ${preview.plan.to}?`,
      { modal: true, detail: lines.join('\n') },
      'Upgrade',
    );
    if (choice !== 'Upgrade') return;
    const result = await withCancellableProgress(
      `Upgrading etcd of ${cluster.name}`,
      (report, signal) =>
        upgradeEtcd(cluster, {
          ...common,
          dryRun: false,
          signal,
          onLine: (h, l) => {
            ctx.log.info(`[${h}] ${l}`);
            if (/^(snapshot|hop |rolling |cluster version)/.test(l)) report(l);
          },
        }),
    );
    void ctx.health.refreshAll();
    if (!result.ok) throw new Error(result.message ?? 'The upgrade stopped.');
    for (const n of result.notes) ctx.log.info(`note: ${n}`);
    void vscode.window.showInformationMessage(
      `etcd of ${cluster.name} is ${result.plan.to} (cluster version ${result.hops.at(-1)?.clusterVersion ?? '?'}); etcd.version in k3s-etcd.yaml follows. Each member keeps its previous binaries as /usr/local/bin/etcd.previous.`,
    );
  };
}
