/**
 * "Export Monitoring Config…" (the CLI's `monitoring export`): the plan shown as a preview (the
 * targets, the monitoring client certificate, every file), a modal, then the files written into
 * monitoring/<cluster>/ beside the inventory, and prometheus.yml opened.
 */
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import { CancelledError, K3sEtcdError } from '../../core/errors';
import {
  MONITORING_DIR,
  monitoringPlanText,
  planMonitoringExport,
  writeMonitoringExport,
  type MonitoringPlan,
} from '../../core/monitoring/export';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { resolveCluster } from '../pick';
import { planUri, showPlan, type PlanDocuments } from '../planDocuments';
import { editorPkiOptions } from './certs';

/** A Markdown code block that no backtick run inside `text` can close. */
function codeBlock(text: string, lang = ''): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${lang}\n${text}\n${fence}`;
}

export function monitoringPreview(plan: MonitoringPlan): string {
  const prom = plan.files.find((f) => f.name === 'prometheus.yml');
  return [
    `# Export monitoring config: ${plan.cluster}`,
    '',
    codeBlock(monitoringPlanText(plan)),
    '',
    ...(prom ? ['## prometheus.yml', '', codeBlock(prom.content.trimEnd(), 'yaml'), ''] : []),
    'Run **Export** in the dialog to write these files. No file holds a key: they name the files by path.',
  ].join('\n');
}

export function exportMonitoringCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const inventory = ctx.inventory.file();
    if (!inventory)
      throw new K3sEtcdError(
        'inventory-missing',
        'Open or create the inventory (k3s-etcd.yaml) first.',
      );
    const dir = join(dirname(inventory), MONITORING_DIR, cluster.name);
    const pki = editorPkiOptions(ctx);
    const plan = await planMonitoringExport(cluster, { dir, pki });
    await showPlan(docs, planUri(`monitoring-${cluster.name}.md`), monitoringPreview(plan));
    const where = vscode.workspace.asRelativePath(dir);
    const issuing =
      plan.certificate && plan.certificate.action !== 'keep'
        ? ` and ${plan.certificate.action === 'create' ? 'issue' : 'replace'} the monitoring client certificate`
        : '';
    const choice = await vscode.window.showInformationMessage(
      `Write ${plan.files.length} monitoring files for ${cluster.name} into ${where}${issuing}?`,
      {
        modal: true,
        detail: `${plan.files.map((f) => f.name).join(', ')}${plan.warnings.length ? `\n\n${plan.warnings.join('\n')}` : ''}`,
      },
      'Export',
    );
    if (choice !== 'Export') throw new CancelledError('Export');
    const r = await writeMonitoringExport(cluster, plan, pki);
    ctx.log.info(`Monitoring export for ${cluster.name}: ${r.written.join(', ')}`);
    for (const w of plan.warnings) ctx.log.warn(w);
    if (r.written.some((p) => p.startsWith(cluster.pki.dir))) await ctx.inventory.reload();
    const prom = plan.files.find((f) => f.name === 'prometheus.yml');
    if (prom)
      await vscode.window.showTextDocument(vscode.Uri.file(join(dir, prom.name)), {
        preview: false,
      });
    void vscode.window.showInformationMessage(
      `Monitoring config for ${cluster.name} written to ${where}: ${plan.files.length} files.`,
    );
  };
}
