/**
 * K3s's SQLite state into the cluster's external etcd (the CLI's `migrate sqlite-to-etcd`): the
 * source from a backup or a chosen state.db, a dry-run report, the write after a modal, then the
 * cut-over offered (K3s pointed at etcd with the same token). And the way back: Move K3s Back to
 * SQLite… (`migrate etcd-to-sqlite --repoint`).
 */
import * as vscode from 'vscode';
import { dirname, join } from 'node:path';
import { rmdir, writeFile } from 'node:fs/promises';
import { CancelledError, K3sEtcdError } from '../../core/errors';
import { k3sServers } from '../../core/inventory/select';
import { listBackups } from '../../core/k3s/ops';
import { tokenSecret } from '../../core/k3sHost/token';
import {
  migrateToEtcd,
  migrationReport,
  readSource,
  saveReport,
  sourceToken,
} from '../../core/migrate/migrate';
import { progressText } from '../../core/migrate/progress';
import { toSqliteReport } from '../../core/migrate/toSqliteReport';
import { planMoveBack, runMoveBack, type MoveBackPlan } from '../../core/moveBack/run';
import { workspaceStateTarget } from '../../core/moveBack/target';
import {
  moveBackConfirmDetail,
  moveBackOutcome,
  moveBackPlanMarkdown,
  moveBackQuestion,
} from '../../core/moveBack/words';
import { localStamp } from '../../core/format/stamp';
import { stepProgressText } from '../../core/plan/words';
import { editorSshContext } from '../sshPrompts';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { planUri, showPlan, type PlanDocuments } from '../planDocuments';
import { resolveCluster, workspaceDir } from '../pick';
import { withCancellableProgress } from '../progress';
import { secretTokenStore } from '../tokenStore';
import { installK3sCommand } from './k3s';

export function migrateSqliteCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const ws = workspaceDir(ctx);
    // The source: a backup of one of the cluster's servers, or a state.db chosen by hand.
    const backups: { label: string; description: string; path: string }[] = [];
    for (const h of k3sServers(cluster)) {
      for (const b of await listBackups(ws, h.name)) {
        backups.push({
          label: `${h.name} ${b.stamp}`,
          description: 'backup',
          path: join(b.dir, 'state.db'),
        });
      }
    }
    const choose = { label: 'Choose a state.db…', description: '', path: '' };
    const picked = await vscode.window.showQuickPick([...backups, choose], {
      title: `Migrate which SQLite state into the etcd of ${cluster.name}?`,
    });
    if (!picked) return;
    let source = picked.path;
    if (!source) {
      const files = await vscode.window.showOpenDialog({
        title: "K3s's state.db (K3s stopped; its -wal and -shm beside it)",
        canSelectMany: false,
        filters: { SQLite: ['db'] },
      });
      if (!files?.[0]) return;
      source = files[0].fsPath;
    }
    let token = await sourceToken(source);
    if (!token) {
      token = await vscode.window.showInputBox({
        title: 'K3s server token',
        prompt:
          "The token of the server that wrote this state (/var/lib/rancher/k3s/server/token): it must open the state's /bootstrap key. Leave empty if the state has none.",
        password: true,
        ignoreFocusOut: true,
      });
      if (token === undefined) return;
    }
    const src = await withCancellableProgress(`Reading ${source}`, (report, signal) =>
      readSource(source, {
        ...(token ? { token } : {}),
        // The target's limit as the inventory provisions it (etcd.maxRequestBytes), else etcd's.
        ...(cluster.etcd.tuning.maxRequestBytes
          ? { maxRequestBytes: cluster.etcd.tuning.maxRequestBytes }
          : {}),
        signal,
        onProgress: (p) => report(progressText(p)),
      }),
    );
    await showPlan(
      docs,
      planUri(`${cluster.name}-migration-dry-run.md`),
      migrationReport(cluster.name, src),
    );
    const go = await vscode.window.showWarningMessage(
      `Write ${src.pre.liveKeys} key(s) into the etcd of ${cluster.name}?`,
      {
        modal: true,
        detail: `From ${src.pre.rows} history rows (revision ${src.pre.currentRevision}). ${src.token.note}. Create-only: an existing key is never overwritten; the result is verified by count and SHA-256.`,
      },
      'Migrate',
    );
    if (go !== 'Migrate') return;
    const run = (force: boolean) =>
      withCancellableProgress(`Migrating into ${cluster.name}`, (report, signal) =>
        migrateToEtcd(cluster, src, {
          force,
          signal,
          onProgress: (p) => report(progressText(p)),
        }),
      );
    let result;
    try {
      result = await run(false);
    } catch (err) {
      if (!(err instanceof K3sEtcdError && err.code === 'migrate-target')) throw err;
      const again = await vscode.window.showWarningMessage(
        err.message,
        { modal: true },
        'Add Only Missing Keys',
      );
      if (again !== 'Add Only Missing Keys') return;
      result = await run(true);
    }
    const file = await saveReport(ws, migrationReport(cluster.name, src, result));
    await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: false });
    const msg = `${result.write.written} key(s) written, ${result.write.alreadyThere} already there; verified: ${result.verify.ok ? 'same keys, same bytes' : 'NO'}.`;
    if (result.verify.ok && result.write.conflicts.length === 0) {
      // The cut-over, offered: K3s on this etcd with the same token, never cluster-init.
      const next = await vscode.window.showInformationMessage(
        msg,
        'Point K3s at etcd (same token)…',
      );
      if (next) {
        if (token) {
          const file = (ctx.inventory.current() as { file: string }).file;
          await secretTokenStore(ctx, file).set(cluster.name, tokenSecret(token));
        }
        await installK3sCommand(ctx)(node);
      }
    } else throw new Error(`${msg} Conflicts: ${result.write.conflicts.join(', ') || 'none'}`);
  };
}

const MOVE_BACK_BUTTON = 'Move to SQLite';

/**
 * Move K3s Back to SQLite… (the CLI's `migrate etcd-to-sqlite --repoint`): the server that keeps
 * running picked (only when there are several), every server and etcd read and the plan shown
 * rendered, a modal naming what stops and what changes, then the move with progress and cancel.
 * The new state.db stays in the workspace under migrations/<UTC time>/ (0700, kept out of git).
 */
export function moveBackToSqliteCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const servers = k3sServers(cluster);
    let server: string | undefined = servers[0]?.name;
    if (servers.length > 1) {
      const picked = await vscode.window.showQuickPick(
        servers.map((h) => ({
          label: h.name,
          description: h.address,
          detail: `Keeps running on SQLite; ${servers
            .filter((o) => o !== h)
            .map((o) => o.name)
            .join(', ')} stopped and disabled (to rejoin as agents, or be reinstalled).`,
        })),
        {
          title: `K3s on SQLite runs one server: which K3s server of ${cluster.name} keeps running?`,
        },
      );
      if (!picked) return;
      server = picked.label;
    }
    const ssh = await editorSshContext(ctx);
    const ws = workspaceDir(ctx);
    const target = await workspaceStateTarget(ws);
    const opts = { ssh, target, ...(server ? { server } : {}) };
    let plan: MoveBackPlan;
    try {
      plan = await withCancellableProgress(
        `Reading the K3s servers and the etcd of ${cluster.name}`,
        (report, signal) =>
          planMoveBack(cluster, { ...opts, signal, onProgress: (p) => report(progressText(p)) }),
      );
      await showPlan(
        docs,
        planUri(`${cluster.name}-move-back-to-sqlite.md`),
        moveBackPlanMarkdown(plan.preview, localStamp(new Date())),
      );
      const go = await vscode.window.showWarningMessage(
        moveBackQuestion(plan.preview),
        { modal: true, detail: moveBackConfirmDetail(plan.preview) },
        MOVE_BACK_BUTTON,
      );
      if (go !== MOVE_BACK_BUTTON) throw new CancelledError('Moving K3s back to SQLite');
    } catch (err) {
      // Nothing was written there: the folder made for the target goes, and migrations/ with it
      // when this left it empty (rmdir removes empty folders only).
      await rmdir(dirname(target)).catch(() => undefined);
      await rmdir(dirname(dirname(target))).catch(() => undefined);
      throw err;
    }
    ctx.log.info(`move of ${cluster.name} back to SQLite on ${plan.preview.chosen} confirmed`);
    const r = await withCancellableProgress(
      `Moving K3s of ${cluster.name} back to SQLite`,
      (report, signal) =>
        runMoveBack(cluster, plan, {
          ...opts,
          signal,
          onProgress: (p) => report(progressText(p)),
          onPhase: (_p, title) => {
            report(title);
            ctx.log.info(`== ${title}`);
          },
          onLine: (h, l) => ctx.log.info(`[${h}] ${l}`),
          onStep: (h, s) => {
            if (s.status === 'pending') report(stepProgressText(h, s));
          },
        }),
    );
    // The report beside the state.db it describes (saveReport would date a second folder).
    if (r.source && r.migration)
      await writeFile(
        join(dirname(target), 'report.md'),
        toSqliteReport(cluster.name, target, r.source, r.migration),
      );
    const words = moveBackOutcome(r);
    for (const l of words) ctx.log.info(l);
    void ctx.health.refreshAll();
    // The K3s server rows were read before the move (etcd ×N): read them again, whatever happened.
    void ctx.k3s.refresh(cluster, ssh);
    if (!r.ok) throw new Error(words.join(' '));
    void vscode.window.showInformationMessage(words.join(' '));
  };
}
