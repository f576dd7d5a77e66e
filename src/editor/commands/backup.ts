/**
 * Backups that run on the hosts (the CLI's `backup install|run|status|keygen`): "Set Up
 * Backups…" and "Remove Backup Timer…" as tasks (the hosts' dry run, a modal, the apply in the
 * terminal), "Make Backup Key Pair…" (the private key saved outside the workspace, the public
 * key added to the recipients file), "Run Backup Now" with progress and cancel, "Show Backup
 * Status" as a read-only Markdown page, and the Backups node's Refresh. The hosts are read only
 * when one of these asks (never polled).
 */
import * as vscode from 'vscode';
import { relative } from 'node:path';
import { readRecipients } from '../../core/backup/crypto';
import { backupHosts, backupSettings } from '../../core/backup/install';
import { defaultPrivateKeyFile, isInside, writeBackupKeyPair } from '../../core/backup/keygen';
import { runBackupNow } from '../../core/backup/run';
import { backupStatusMarkdown } from '../../core/backup/statusMarkdown';
import { errorMessage } from '../../core/errors';
import { etcdHosts } from '../../core/inventory/select';
import type { Cluster } from '../../core/inventory/types';
import type { TreeNode } from '../../core/tree/model';
import { COMMANDS } from '../../shared/commands';
import type { ExtensionCtx } from '../ctx';
import { planUri, showPlan, type PlanDocuments } from '../planDocuments';
import { resolveCluster, workspaceDir } from '../pick';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';
import { runProvisionTask } from '../tasks/provider';

/** The block to add under a cluster that has none (a destination host suggested when one fits). */
export function backupBlockSuggestion(cluster: Cluster): string {
  const etcd = new Set(etcdHosts(cluster).map((h) => h.name));
  const other = cluster.hosts.find((h) => !etcd.has(h.name));
  return [
    '    backup:',
    '      interval: 1h',
    '      keep: { hourly: 24, daily: 7, weekly: 4 }',
    '      encryption: { recipientsFile: backup-recipients.pem }',
    '      destinations:',
    other
      ? `        - { host: ${other.name}, path: /var/backups/k3s-etcd }`
      : '        - { s3: { endpoint: "https://s3.example:9000", bucket: etcd, prefix: edge-a/, credentialsFile: /etc/k3s-etcd/s3.env } }',
  ].join('\n');
}

/** Says what to add to k3s-etcd.yaml; offers to open it at the cluster or copy the block. */
async function explainMissingBlock(ctx: ExtensionCtx, cluster: Cluster): Promise<void> {
  const block = backupBlockSuggestion(cluster);
  const open = 'Open Inventory';
  const copy = 'Copy the Block';
  const choice = await vscode.window.showWarningMessage(
    `Cluster ${cluster.name} has no backup block in k3s-etcd.yaml.`,
    {
      modal: true,
      detail: `Add it under the cluster (beside etcd:, pki: and hosts:), then run "Make Backup Key Pair…" and "Set Up Backups…" again:\n\n${block}\n\ndestinations: another host of the cluster over SSH and/or S3-compatible storage (its credentials in a 0600 file on the backup host, never in the inventory).`,
    },
    open,
    copy,
  );
  if (choice === copy) await vscode.env.clipboard.writeText(`${block}\n`);
  if (choice === open || choice === copy) {
    const file = (ctx.inventory.current() as { file: string }).file;
    const line = Math.max(0, cluster.line - 1);
    await vscode.window.showTextDocument(vscode.Uri.file(file), {
      selection: new vscode.Range(line, 0, line, 0),
    });
  }
}

/** The cluster of the node or a pick, when it has a backup block (else says what to add). */
async function clusterWithBackups(ctx: ExtensionCtx, node?: TreeNode) {
  const cluster = await resolveCluster(ctx, node);
  if (!cluster.backup) {
    await explainMissingBlock(ctx, cluster);
    return undefined;
  }
  return cluster;
}

export function setUpBackupsCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await clusterWithBackups(ctx, node);
    if (!cluster) return;
    const b = backupSettings(cluster);
    try {
      await readRecipients(b.recipientsFile);
    } catch (err) {
      const make = 'Make Backup Key Pair…';
      const choice = await vscode.window.showWarningMessage(
        `No public key to encrypt backups to: ${errorMessage(err)}`,
        make,
      );
      if (choice === make) await vscode.commands.executeCommand(COMMANDS.backupKeygen, node);
      return;
    }
    await runProvisionTask(ctx, cluster.name, undefined, 'backup-install');
  };
}

export function removeBackupsCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await clusterWithBackups(ctx, node);
    if (!cluster) return;
    await runProvisionTask(ctx, cluster.name, undefined, 'backup-install', { remove: true });
  };
}

export function makeBackupKeyPairCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await clusterWithBackups(ctx, node);
    if (!cluster) return;
    const b = backupSettings(cluster);
    const folders = [
      workspaceDir(ctx),
      ...(vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
    ];
    let target = vscode.Uri.file(defaultPrivateKeyFile(cluster.name));
    for (;;) {
      const picked = await vscode.window.showSaveDialog({
        title: `Private key for the backups of ${cluster.name}: outside the workspace, kept safe`,
        defaultUri: target,
        saveLabel: 'Save Private Key',
        filters: { 'Private key (PEM)': ['key', 'pem'] },
      });
      if (!picked) return;
      target = picked;
      const inside: string[] = [];
      for (const f of folders) if (await isInside(picked.fsPath, f)) inside.push(f);
      if (inside.length === 0) break;
      const again = 'Choose Another Place…';
      const choice = await vscode.window.showWarningMessage(
        `${picked.fsPath} is inside the workspace (${inside[0]}): the private key must live elsewhere.`,
        {
          modal: true,
          detail:
            'Whoever has this key can read every backup, and every Kubernetes Secret in it. In the workspace it would travel with the inventory (git, sync, copies of the folder). Save it in your home folder or on a removable drive, and keep a copy offline: without it no backup can be read.',
        },
        again,
      );
      if (choice !== again) return;
    }
    const written = await withCancellableProgress(
      `Making the backup key pair of ${cluster.name} (RSA-4096)`,
      () =>
        writeBackupKeyPair({
          privateKeyFile: target.fsPath,
          recipientsFile: b.recipientsFile,
          workspaceDir: workspaceDir(ctx),
        }),
    );
    ctx.log.info(
      `backup key pair of ${cluster.name}: private ${written.privateKeyFile}, public ${written.fingerprint} added to ${written.recipientsFile}`,
    );
    const setUp = 'Set Up Backups…';
    const choice = await vscode.window.showInformationMessage(
      `Private key saved to ${written.privateKeyFile} (0600): keep a copy offline, without it no backup can be read. Public key ${written.fingerprint.slice(0, 16)}… added to ${relative(workspaceDir(ctx), written.recipientsFile)}; Set Up Backups… gives it to the hosts.`,
      setUp,
    );
    if (choice === setUp) await vscode.commands.executeCommand(COMMANDS.backupInstall, node);
  };
}

/** Reads the hosts' backups with progress (the Backups node follows). */
async function readStatus(ctx: ExtensionCtx, cluster: Cluster) {
  const ssh = await editorSshContext(ctx);
  return withCancellableProgress(`Reading the backups of ${cluster.name}`, (_r, signal) =>
    ctx.backups.read(cluster, ssh, signal),
  );
}

export function runBackupNowCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await clusterWithBackups(ctx, node);
    if (!cluster) return;
    const ssh = await editorSshContext(ctx);
    const hosts = backupHosts(cluster).map((h) => h.name);
    const r = await withCancellableProgress(
      `Taking a backup of ${cluster.name} (${hosts.join(', ')})`,
      (report, signal) =>
        runBackupNow(cluster, {
          ssh,
          signal,
          onLine: (host, line) => {
            ctx.log.info(`backup ${cluster.name} ${host}: ${line}`);
            report(`${host}: ${line}`);
          },
        }),
    );
    void ctx.backups.read(cluster, ssh).catch((err: unknown) => {
      ctx.log.warn(`backups of ${cluster.name} not read: ${errorMessage(err)}`);
    });
    const show = 'Show Backup Status';
    const errors = r.runs.filter((x) => x.error).map((x) => `${x.host}: ${x.error}`);
    let choice: string | undefined;
    if (r.ok && r.acted)
      choice = await vscode.window.showInformationMessage(
        `${cluster.name}: backup taken on ${r.acted.host}: ${r.acted.summary}`,
        show,
      );
    else if (!r.acted) {
      const setUp = 'Set Up Backups…';
      choice = await vscode.window.showWarningMessage(
        `${cluster.name}: no host took a backup. Is the timer installed (Set Up Backups…)?${errors.length ? ` ${errors.join('; ')}` : ''}`,
        setUp,
        show,
      );
      if (choice === setUp) await vscode.commands.executeCommand(COMMANDS.backupInstall, node);
    } else
      choice = await vscode.window.showWarningMessage(
        `${cluster.name}: the backup on ${r.acted.host} ${r.acted.result}: ${r.acted.summary}`,
        show,
      );
    if (choice === show) await vscode.commands.executeCommand(COMMANDS.backupStatus, node);
  };
}

export function showBackupStatusCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await clusterWithBackups(ctx, node);
    if (!cluster) return;
    const status = await readStatus(ctx, cluster);
    const page = backupStatusMarkdown(
      status,
      ctx.backups.states().get(cluster.name)?.at ?? Date.now(),
    );
    if (docs) await showPlan(docs, planUri(`backups-${cluster.name}.md`), page);
  };
}

export function refreshBackupsCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await clusterWithBackups(ctx, node);
    if (!cluster) return;
    const status = await readStatus(ctx, cluster);
    if (status.problems.length > 0)
      void vscode.window.showWarningMessage(
        `Backups of ${cluster.name} are not fresh: ${status.problems[0]}${status.problems.length > 1 ? ` (and ${status.problems.length - 1} more: Show Backup Status)` : ''}`,
      );
  };
}
