/** The etcdctl terminal and environment for a cluster (the CLI's `etcdctl-env`). */
import * as vscode from 'vscode';
import { etcdctlEnv, exportLines } from '../../core/etcd/etcdctlEnv';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { resolveCluster } from '../pick';

export function openEtcdctlTerminalCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const env = await etcdctlEnv(cluster);
    const terminal = vscode.window.createTerminal({
      name: `etcdctl (${cluster.name})`,
      env,
      iconPath: new vscode.ThemeIcon('database'),
      message: `ETCDCTL_* point at ${cluster.name}: try etcdctl endpoint health, etcdctl member list -w table`,
    });
    terminal.show();
  };
}

export function copyEtcdctlEnvCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    await vscode.env.clipboard.writeText(`${exportLines(await etcdctlEnv(cluster))}\n`);
    void vscode.window.showInformationMessage(
      `etcdctl environment of ${cluster.name} copied: paste it into a shell or profile.`,
    );
  };
}
