/** Cluster commands. A handler takes an optional tree node and otherwise asks with a quick pick. */
import * as vscode from 'vscode';
import { CancelledError } from '../../core/errors';
import type { Cluster } from '../../core/inventory/types';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { HealthPanel } from '../webviewHost/healthPanel';
import { OverviewPanel } from '../webviewHost/overviewPanel';

/** The cluster a command applies to: from the node, the only cluster, or a quick pick. */
export async function pickCluster(ctx: ExtensionCtx, node?: TreeNode): Promise<string> {
  if (node && node.kind !== 'problem' && node.kind !== 'trust') return node.cluster;
  const result = await ctx.inventory.whenLoaded();
  if (result.status !== 'ok') {
    throw new Error(
      result.status === 'missing'
        ? 'There is no inventory yet. Run "K3s etcd: Create Inventory" first.'
        : 'The inventory has errors. Fix them (see the Problems view) and try again.',
    );
  }
  const names = result.inventory.clusters.map((c) => c.name);
  if (names.length === 1 && names[0]) return names[0];
  const picked = await vscode.window.showQuickPick(names, { title: 'Which cluster?' });
  if (!picked) throw new CancelledError('Cluster selection');
  return picked;
}

/** The inventory's Cluster object for a node or a pick. */
export async function resolveCluster(ctx: ExtensionCtx, node?: TreeNode): Promise<Cluster> {
  return clusterNamed(ctx, await pickCluster(ctx, node));
}

/** The cluster of that name in the loaded inventory. */
export function clusterNamed(ctx: ExtensionCtx, name: string): Cluster {
  const result = ctx.inventory.current();
  const cluster =
    result?.status === 'ok' ? result.inventory.clusters.find((c) => c.name === name) : undefined;
  if (!cluster)
    throw new Error(`Cluster "${name}" is not in the inventory any more: refresh and try again.`);
  return cluster;
}

export function openClusterPanel(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    OverviewPanel.show(ctx, await pickCluster(ctx, node));
  };
}

export function openHealthPanel(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    HealthPanel.show(ctx, await pickCluster(ctx, node));
  };
}
