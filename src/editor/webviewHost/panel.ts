/**
 * What every webview panel of the extension shares: the HTML template with a strict CSP (scripts
 * only with a nonce, everything else only from the extension's dist/webview and media folders),
 * codicons, the theme stylesheet, and the panel options.
 */
import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import type { ExtensionCtx } from '../ctx';

export function webviewHtml(
  webview: vscode.Webview,
  root: vscode.Uri,
  script: string,
  title: string,
): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (...p: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(root, ...p));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource}; font-src ${webview.cspSource}; img-src ${webview.cspSource} data:; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${asset('media', 'webview.css')}" rel="stylesheet">
<link href="${asset('dist', 'webview', 'uplot.css')}" rel="stylesheet">
<link id="vscode-codicon-stylesheet" href="${asset('dist', 'webview', 'codicons', 'codicon.css')}" rel="stylesheet">
<title>${title}</title>
</head>
<body>
<main id="app" aria-live="polite"><p class="muted">Loading…</p></main>
<script nonce="${nonce}" type="module" src="${asset('dist', 'webview', `${script}.js`)}"></script>
</body>
</html>`;
}

/** A panel showing `dist/webview/<script>.js`, with resources limited to the bundle and media. */
export function createPanel(
  ctx: ExtensionCtx,
  viewType: string,
  title: string,
  script: string,
): vscode.WebviewPanel {
  const root = ctx.vscodeContext.extensionUri;
  const panel = vscode.window.createWebviewPanel(viewType, title, vscode.ViewColumn.Active, {
    enableScripts: true,
    localResourceRoots: [
      vscode.Uri.joinPath(root, 'dist', 'webview'),
      vscode.Uri.joinPath(root, 'media'),
    ],
  });
  panel.iconPath = vscode.Uri.joinPath(root, 'media', 'k3s-etcd.svg');
  panel.webview.html = webviewHtml(panel.webview, root, script, title);
  return panel;
}
