/** Small commands: refresh, copy a host's SSH target, documentation, log. */
import * as vscode from 'vscode';
import { readdir } from 'node:fs/promises';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { quietSshContext } from '../sshPrompts';

export function refreshTree(ctx: ExtensionCtx) {
  return async (): Promise<void> => {
    await ctx.inventory.reload();
    await ctx.health.refreshAll();
    // The person asked: a cluster where nothing answers has its hosts asked for etcd's unit.
    const r = ctx.inventory.current();
    const clusters = r?.status === 'ok' ? r.inventory.clusters : [];
    await Promise.all(clusters.map((c) => ctx.health.lookForUnit(c, () => quietSshContext(ctx))));
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
    // The README ships in the VSIX, so documentation works offline. vsce stores it as
    // readme.md, the source tree has README.md: find it whatever its case.
    const root = ctx.vscodeContext.extensionUri;
    const name = (await readdir(root.fsPath)).find((n) => n.toLowerCase() === 'readme.md');
    if (!name)
      throw new Error(`The README is missing from ${root.fsPath}: reinstall the extension.`);
    await vscode.commands.executeCommand('markdown.showPreview', vscode.Uri.joinPath(root, name));
  };
}

export function showLog(ctx: ExtensionCtx) {
  return async (): Promise<void> => {
    ctx.log.show(true);
  };
}
