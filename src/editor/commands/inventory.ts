/**
 * Inventory commands: create, open (at a node's line), validate, go to a problem, and the cluster
 * overview panel (the CLI's `inventory validate|show|init`).
 */
import * as vscode from 'vscode';
import { access, writeFile } from 'node:fs/promises';
import { summarize } from '../../core/inventory/parse';
import { STARTER_INVENTORY } from '../../core/inventory/starter';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { pickCluster } from '../pick';
import { OverviewPanel } from '../webviewHost/overviewPanel';

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

async function openAt(
  file: string,
  line: number,
  column = 1,
  endLine = line,
  endColumn = column,
): Promise<void> {
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
  const range = new vscode.Range(
    line - 1,
    column - 1,
    endLine - 1,
    Math.max(endColumn - 1, column - 1),
  );
  await vscode.window.showTextDocument(doc, { selection: range, preview: false });
}

function requireFile(ctx: ExtensionCtx): string {
  const file = ctx.inventory.file();
  if (!file) throw new Error('Open a folder first: the inventory lives in the workspace.');
  return file;
}

export function createInventory(ctx: ExtensionCtx) {
  return async (): Promise<void> => {
    const file = requireFile(ctx);
    if (await exists(file)) {
      const choice = await vscode.window.showInformationMessage(
        `${vscode.workspace.asRelativePath(file)} already exists. It was left as it is.`,
        'Open It',
      );
      if (choice === 'Open It') await openAt(file, 1);
      return;
    }
    await writeFile(file, STARTER_INVENTORY, { flag: 'wx' });
    ctx.log.info(`Created ${file}`);
    await openAt(file, 1);
    await ctx.inventory.reload();
  };
}

export function openInventory(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const file = requireFile(ctx);
    if (!(await exists(file))) {
      const choice = await vscode.window.showWarningMessage(
        `There is no ${vscode.workspace.asRelativePath(file)} yet.`,
        'Create Inventory',
      );
      if (choice === 'Create Inventory') await createInventory(ctx)();
      return;
    }
    const line = node && (node.kind === 'cluster' || node.kind === 'host') ? node.line : 1;
    await openAt(file, line);
  };
}

export function validateInventory(ctx: ExtensionCtx) {
  return async (): Promise<void> => {
    const result = await ctx.inventory.reload();
    const name = result.file ? vscode.workspace.asRelativePath(result.file) : 'the inventory';
    if (result.status === 'missing') {
      const choice = await vscode.window.showWarningMessage(
        `No inventory: ${name} does not exist.`,
        'Create Inventory',
      );
      if (choice === 'Create Inventory') await createInventory(ctx)();
      return;
    }
    const errors = result.problems.filter((p) => p.severity === 'error').length;
    const warnings = result.problems.length - errors;
    if (result.status === 'ok' && warnings === 0) {
      void vscode.window.showInformationMessage(
        `${name} is valid: ${summarize(result.inventory)}.`,
      );
      return;
    }
    const text =
      result.status === 'ok'
        ? `${name} is valid with ${warnings} warning(s): ${summarize(result.inventory)}.`
        : `${name} has ${errors} error(s)${warnings ? ` and ${warnings} warning(s)` : ''}.`;
    const show =
      result.status === 'ok' ? vscode.window.showWarningMessage : vscode.window.showErrorMessage;
    const choice = await show(text, 'Show Problems');
    if (choice === 'Show Problems')
      await vscode.commands.executeCommand('workbench.actions.view.problems');
  };
}

export function revealProblem() {
  return async (node?: TreeNode): Promise<void> => {
    if (node?.kind !== 'problem') return;
    const p = node.problem;
    await openAt(p.file, p.line, p.column, p.endLine, p.endColumn);
  };
}

export function openClusterPanel(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    OverviewPanel.show(ctx, await pickCluster(ctx, node));
  };
}
