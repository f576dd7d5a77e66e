/** Small commands: refresh, copy a host's SSH target, documentation, log. */
import * as vscode from 'vscode';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';

export function refreshTree(ctx: ExtensionCtx) {
  return async (): Promise<void> => {
    await ctx.inventory.reload();
  };
}

export function copyHostAddress() {
  return async (node?: TreeNode): Promise<void> => {
    if (node?.kind !== 'host') return;
    await vscode.env.clipboard.writeText(node.sshTarget);
    void vscode.window.setStatusBarMessage(`Copied ${node.sshTarget}`, 3000);
  };
}

export function openDocs(ctx: ExtensionCtx) {
  return async (): Promise<void> => {
    // The README ships in the VSIX: documentation works offline.
    const readme = vscode.Uri.joinPath(ctx.vscodeContext.extensionUri, 'README.md');
    await vscode.commands.executeCommand('markdown.showPreview', readme);
  };
}

export function showLog(ctx: ExtensionCtx) {
  return async (): Promise<void> => {
    ctx.log.show(true);
  };
}
