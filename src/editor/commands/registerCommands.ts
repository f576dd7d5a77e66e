/**
 * The one registration table: every id in `COMMANDS` maps to a handler factory here (each from
 * commands/<op>.ts, named like the CLI's src/cli/<op>.ts), and every handler runs inside the
 * same error wrapper, and a command that finished is recorded for the walkthrough's steps
 * (walkthrough.ts). The record type makes a missing handler a
 * compile error. Every command needs a trusted workspace unless it is listed in
 * `WORKS_UNTRUSTED` (it only reads or shows local files): in Restricted Mode the others refuse
 * with a message that offers the Workspace Trust editor.
 */
import * as vscode from 'vscode';
import type { TreeNode } from '../../core/tree/model';
import { COMMANDS, type CommandKey } from '../../shared/commands';
import { commandTitles } from '../commandTitles';
import type { ExtensionCtx } from '../ctx';
import { showError } from '../errors';
import {
  CertificateDocuments,
  CERT_SCHEME,
  generateCertificates,
  importCaCommand,
  inspectCertificateCommand,
  reissueMember,
  checkDeployedCertificatesCommand,
} from './certs';
import {
  makeBackupKeyPairCommand,
  refreshBackupsCommand,
  removeBackupsCommand,
  runBackupNowCommand,
  setUpBackupsCommand,
  showBackupStatusCommand,
} from './backup';
import { copyEtcdctlEnvCommand, openEtcdctlTerminalCommand } from './etcdctl';
import { openHealthPanel } from './health';
import { renewCertificatesCommand } from './renew';
import { rotateCaCommand } from './rotate';
import {
  createInventory,
  openClusterPanel,
  openInventory,
  revealProblem,
  validateInventory,
} from './inventory';
import {
  backupK3sCommand,
  fetchKubeconfigCommand,
  installK3sCommand,
  previewK3sPlanCommand,
  refreshK3sStateCommand,
  restoreK3sCommand,
} from './k3s';
import { showKeyCommand } from './keyspace';
import { maintainCommand, scheduleMaintenanceCommand } from './maintain';
import { addMemberCommand, removeMemberCommand, replaceMemberCommand } from './member';
import { migrateSqliteCommand, moveBackToSqliteCommand } from './migrate';
import { exportMonitoringCommand } from './monitoring';
import { copyHostAddress, openDocs, refreshTree, showLog } from './misc';
import { previewPlanCommand, provisionEtcdCommand } from './provision';
import { upgradeEtcdCommand } from './upgrade';
import { fixPeerUrlCommand } from './repair';
import { restoreSnapshotCommand } from './restore';
import { recoverClusterCommand } from './recover';
import { saveSnapshotCommand, showSnapshotsCommand } from './snapshot';
import { PlanDocuments, PLAN_SCHEME } from '../planDocuments';
import { recordCommandRan } from '../walkthrough';
import { WORKS_UNTRUSTED } from '../untrustedCommands';

type Handler = (node?: TreeNode) => Promise<void>;

export function registerCommands(ctx: ExtensionCtx): void {
  const titles = commandTitles(ctx.vscodeContext.extension.packageJSON);
  const certDocs = new CertificateDocuments();
  ctx.push(vscode.workspace.registerTextDocumentContentProvider(CERT_SCHEME, certDocs));
  const planDocs = new PlanDocuments();
  ctx.push(vscode.workspace.registerTextDocumentContentProvider(PLAN_SCHEME, planDocs));
  const handlers: Record<CommandKey, Handler> = {
    inventoryCreate: createInventory(ctx),
    inventoryOpen: openInventory(ctx),
    inventoryValidate: validateInventory(ctx),
    treeRefresh: refreshTree(ctx),
    problemReveal: revealProblem(),
    clusterOpenPanel: openClusterPanel(ctx),
    clusterOpenHealth: openHealthPanel(ctx),
    hostCopyAddress: copyHostAddress(),
    certsGenerate: generateCertificates(ctx),
    certsInspect: inspectCertificateCommand(ctx, certDocs),
    certsImportCa: importCaCommand(ctx),
    certsReissue: reissueMember(ctx),
    certsCheck: checkDeployedCertificatesCommand(ctx, planDocs),
    certsRenew: renewCertificatesCommand(ctx),
    certsRotateCa: rotateCaCommand(ctx),
    provisionEtcd: provisionEtcdCommand(ctx),
    upgradeEtcd: upgradeEtcdCommand(ctx),
    provisionPreview: previewPlanCommand(ctx, planDocs),
    memberAdd: addMemberCommand(ctx),
    memberRemove: removeMemberCommand(ctx),
    memberReplace: replaceMemberCommand(ctx, planDocs),
    memberFixPeerUrl: fixPeerUrlCommand(ctx),
    k3sInstall: installK3sCommand(ctx),
    k3sPreview: previewK3sPlanCommand(ctx, planDocs),
    k3sBackup: backupK3sCommand(ctx),
    k3sRestore: restoreK3sCommand(ctx),
    k3sFetchKubeconfig: fetchKubeconfigCommand(ctx),
    k3sRefreshState: refreshK3sStateCommand(ctx),
    migrateSqliteToEtcd: migrateSqliteCommand(ctx, planDocs),
    migrateEtcdToSqlite: moveBackToSqliteCommand(ctx, planDocs),
    maintain: maintainCommand(ctx, planDocs),
    scheduleMaintenance: scheduleMaintenanceCommand(ctx),
    snapshotSave: saveSnapshotCommand(ctx, planDocs),
    snapshotList: showSnapshotsCommand(ctx, planDocs),
    snapshotRestore: restoreSnapshotCommand(ctx, planDocs),
    clusterRecover: recoverClusterCommand(ctx, planDocs),
    monitoringExport: exportMonitoringCommand(ctx, planDocs),
    keyspaceShowKey: showKeyCommand(ctx, planDocs),
    backupInstall: setUpBackupsCommand(ctx),
    backupRemove: removeBackupsCommand(ctx),
    backupKeygen: makeBackupKeyPairCommand(ctx),
    backupRun: runBackupNowCommand(ctx),
    backupStatus: showBackupStatusCommand(ctx, planDocs),
    backupRefresh: refreshBackupsCommand(ctx),
    etcdctlOpenTerminal: openEtcdctlTerminalCommand(ctx),
    etcdctlCopyEnv: copyEtcdctlEnvCommand(ctx),
    docsOpen: openDocs(ctx),
    logShow: showLog(ctx),
  };
  for (const key of Object.keys(COMMANDS) as CommandKey[]) {
    const handler = handlers[key];
    ctx.push(
      vscode.commands.registerCommand(COMMANDS[key], async (node?: TreeNode) => {
        try {
          if (!WORKS_UNTRUSTED.has(key)) ctx.trust.require(titles[key]);
          await handler(node);
          recordCommandRan(ctx, key, true);
        } catch (err) {
          recordCommandRan(ctx, key, false);
          await showError(ctx.log, titles[key], err);
        }
      }),
    );
  }
}
