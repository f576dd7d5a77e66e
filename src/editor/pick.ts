/**
 * What a command applies to: the cluster (from the tree node, the only one, or a quick pick),
 * an etcd host, a snapshot, and the inventory's folder.
 */
import { localStamp } from '../core/format/stamp';
import * as vscode from 'vscode';
import { dirname, relative } from 'node:path';
import { listSnapshots } from '../core/snapshot/snapshot';
import { type SnapshotInfo } from '../core/etcd/snapshotFile';
import { CancelledError } from '../core/errors';
import type { Cluster, Host } from '../core/inventory/types';
import { clusterByName, etcdHosts } from '../core/inventory/select';
import type { TreeNode } from '../core/tree/model';
import type { ExtensionCtx } from './ctx';

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
  const cluster = result?.status === 'ok' ? clusterByName(result.inventory, name) : undefined;
  if (!cluster)
    throw new Error(`Cluster "${name}" is not in the inventory any more: refresh and try again.`);
  return cluster;
}

/** The inventory's folder (the workspace): backups/, pki/ and the kubeconfigs live under it. */
export function workspaceDir(ctx: ExtensionCtx): string {
  return dirname((ctx.inventory.current() as { file: string }).file);
}

/** The host a tree node (host or role) names, if any. */
export function hostOf(cluster: Cluster, node?: TreeNode): Host | undefined {
  if (!node || (node.kind !== 'host' && node.kind !== 'role')) return undefined;
  return cluster.hosts.find((h) => h.name === node.host);
}

/** An etcd host of the cluster, picked (cancelling throws). */
export async function pickEtcdHost(
  cluster: Cluster,
  title: string,
  filter: (h: Host) => boolean = () => true,
): Promise<Host> {
  const hosts = etcdHosts(cluster).filter(filter);
  const picked = await vscode.window.showQuickPick(
    hosts.map((h) => ({ label: h.name, description: h.address, host: h })),
    { title },
  );
  if (!picked) throw new CancelledError(title);
  return picked.host;
}

export const snapshotTime = (s: SnapshotInfo) => localStamp(s.createdAt);

export function snapshotItems(ctx: ExtensionCtx, list: SnapshotInfo[]) {
  return list.map((s) => ({
    label: snapshotTime(s),
    description: `revision ${s.revision} · ${Math.round(s.bytes / 1024)} KB`,
    detail: relative(workspaceDir(ctx), s.file),
    s,
  }));
}

export async function snapshotsOf(ctx: ExtensionCtx, cluster: Cluster): Promise<SnapshotInfo[]> {
  const list = await listSnapshots(workspaceDir(ctx), cluster.name);
  if (list.length === 0) {
    void vscode.window.showInformationMessage(
      `No snapshot of ${cluster.name} yet: use "Save etcd Snapshot".`,
    );
  }
  return list;
}
