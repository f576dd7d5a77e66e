/**
 * Scheduled snapshots while VS Code is open: every `k3sEtcd.snapshot.intervalMinutes` (0 = off)
 * each cluster of the inventory gets a snapshot in backups/<cluster>/. A failure is logged and
 * shown once per cluster until the next success; the schedule follows setting changes. In an
 * untrusted workspace there is no schedule at all (it would connect); trust arms it.
 */
import * as vscode from 'vscode';
import { Config } from './config';
import { dirname } from 'node:path';
import { errorMessage } from '../core/errors';
import { saveSnapshot } from '../core/snapshot/snapshot';
import type { ExtensionCtx } from './ctx';

export function registerSnapshotSchedule(ctx: ExtensionCtx): void {
  let timer: NodeJS.Timeout | undefined;
  const failing = new Set<string>();
  const run = async () => {
    const inv = ctx.inventory.current();
    if (inv?.status !== 'ok') return;
    for (const cluster of inv.inventory.clusters) {
      try {
        const s = await saveSnapshot(cluster, { workspaceDir: dirname(inv.file) });
        ctx.log.info(
          `scheduled snapshot of ${cluster.name}: ${s.file} (${s.bytes} bytes, revision ${s.revision})`,
        );
        failing.delete(cluster.name);
      } catch (err) {
        ctx.log.warn(`scheduled snapshot of ${cluster.name} failed: ${errorMessage(err)}`);
        if (!failing.has(cluster.name)) {
          failing.add(cluster.name);
          void vscode.window.showWarningMessage(
            `Scheduled etcd snapshot of ${cluster.name} failed: ${errorMessage(err)}`,
          );
        }
      }
    }
  };
  const arm = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    if (!ctx.trust.trusted) return;
    const minutes = Config.get('snapshotIntervalMinutes');
    if (minutes > 0) timer = setInterval(() => void run(), minutes * 60_000);
  };
  arm();
  ctx.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (Config.affects(e, 'snapshotIntervalMinutes')) arm();
    }),
    ctx.trust.onDidGrant(arm),
    { dispose: () => timer && clearInterval(timer) },
  );
}
