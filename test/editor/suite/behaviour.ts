/**
 * In-host tests of what a person sees when the inventory changes: the tree follows the file,
 * problems show as nodes and as diagnostics, rapid saves settle on the last content, the
 * inventory can be created from the palette, and the overview panel opens. Every wait has a
 * deadline; the inventory is restored afterwards.
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { InHostTest } from './runner';
import { activated, children, nodeName, type K3sEtcdApiLike, type TreeNodeLike } from './api';

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function folder(): string {
  const f = vscode.workspace.workspaceFolders?.[0];
  assert.ok(f, 'no workspace folder');
  return f.uri.fsPath;
}

async function roots(api: K3sEtcdApiLike): Promise<TreeNodeLike[]> {
  return children(api);
}

const kinds = (nodes: TreeNodeLike[]) =>
  nodes.map((n) => `${n.kind}:${n.kind === 'problem' ? n.label : nodeName(n)}`).join(' | ');

export const behaviourTests: InHostTest[] = [
  {
    name: 'a broken address on disk: the tree shows the problem and the editor a diagnostic at its line; fixing it restores the tree',
    timeoutMs: 45_000,
    fn: async () => {
      const { api } = await activated();
      const file = join(folder(), 'k3s-etcd.yaml');
      const good = await readFile(file, 'utf8');
      try {
        await writeFile(file, good.replace('127.0.1.23', '10.0.0.999'));
        const problems = await until('a problem node', async () => {
          const r = await roots(api);
          return r.length > 0 && r.every((n) => n.kind === 'problem') ? r : undefined;
        });
        assert.match(
          problems[0]!.label,
          /clusters\[0\]\.hosts\[2\]\.address: "10\.0\.0\.999" is not an IP address or hostname/,
        );
        const diag = await until('a diagnostic', () => {
          const d = vscode.languages.getDiagnostics(vscode.Uri.file(file));
          return d.length > 0 ? d : undefined;
        });
        assert.equal(diag[0]!.severity, vscode.DiagnosticSeverity.Error);
        assert.equal(diag[0]!.range.start.line, 23, 'diagnostic on line 24 (0-based 23)');
        assert.equal(diag[0]!.range.start.character, 17);
        assert.equal(diag[0]!.source, 'k3s-etcd');

        // Clicking the problem node opens the file at the position.
        const item = await api.tree.getTreeItem(problems[0]!);
        assert.ok(item.command, 'problem nodes have a command');
        await vscode.commands.executeCommand(
          item.command.command,
          ...(item.command.arguments ?? []),
        );
        const editor = await until('the inventory editor', () => vscode.window.activeTextEditor);
        assert.equal(editor.document.uri.fsPath, file);
        assert.equal(editor.selection.start.line, 23);
      } finally {
        await writeFile(file, good);
      }
      await until('the cluster back', async () => {
        const r = await roots(api);
        return r.some((n) => n.kind === 'cluster' && nodeName(n) === 'edge-a') &&
          vscode.languages.getDiagnostics(vscode.Uri.file(file)).length === 0
          ? r
          : undefined;
      });
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    },
  },
  {
    name: 'saves that land while the tree refreshes settle on the last content',
    timeoutMs: 45_000,
    fn: async () => {
      const { api } = await activated();
      const file = join(folder(), 'k3s-etcd.yaml');
      const good = await readFile(file, 'utf8');
      try {
        for (let i = 0; i < 8; i++) {
          await writeFile(file, good.replace('name: edge-a', `name: edge-r${i}`));
          if (i % 2 === 0) void vscode.commands.executeCommand('k3sEtcd.tree.refresh');
          await new Promise((r) => setTimeout(r, 20 + 15 * i));
        }
        await until('the last name', async () => {
          const r = await roots(api);
          return r.length === 1 && nodeName(r[0]!) === 'edge-r7' ? r : undefined;
        });
        // And it stays there: no older load overwrites it afterwards.
        await new Promise((r) => setTimeout(r, 600));
        assert.equal(kinds(await roots(api)), 'cluster:edge-r7');
      } finally {
        await writeFile(file, good);
      }
      await until('edge-a back', async () => {
        const r = await roots(api);
        return r.length === 1 && nodeName(r[0]!) === 'edge-a' ? r : undefined;
      });
    },
  },
  {
    name: 'Create Inventory writes the commented starter where the setting points, and the tree shows it',
    timeoutMs: 45_000,
    fn: async () => {
      const { api } = await activated();
      const config = vscode.workspace.getConfiguration('k3sEtcd');
      const other = join(folder(), 'site-b.k3s-etcd.yaml');
      await rm(other, { force: true });
      try {
        await config.update(
          'inventoryPath',
          'site-b.k3s-etcd.yaml',
          vscode.ConfigurationTarget.Workspace,
        );
        await until('an empty tree (no inventory there yet)', async () =>
          (await roots(api)).length === 0 ? true : undefined,
        );
        await vscode.commands.executeCommand('k3sEtcd.inventory.create');
        const text = await readFile(other, 'utf8');
        assert.match(text, /^# K3s etcd inventory/);
        await until('the starter cluster', async () => {
          const r = await roots(api);
          return r.some((n) => n.kind === 'cluster' && nodeName(n) === 'edge-a') ? r : undefined;
        });
        const editor = vscode.window.activeTextEditor;
        assert.equal(editor?.document.uri.fsPath, other, 'the new file is opened');
        // Running it again never overwrites the file.
        await writeFile(other, text + '# mine\n');
        void vscode.commands.executeCommand('k3sEtcd.inventory.create');
        await new Promise((r) => setTimeout(r, 500));
        assert.match(await readFile(other, 'utf8'), /# mine\n$/);
      } finally {
        await config.update('inventoryPath', undefined, vscode.ConfigurationTarget.Workspace);
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
        await rm(other, { force: true });
      }
      await until('edge-lab back', async () => {
        const r = await roots(api);
        const c = r.find((n) => n.kind === 'cluster');
        return c && (await children(api, c)).some((h) => nodeName(h) === 'edge-1') && r.length === 1
          ? r
          : undefined;
      });
    },
  },
  {
    name: 'Open Cluster Overview opens one panel per cluster and reuses it',
    fn: async () => {
      const { api } = await activated();
      const [cluster] = await roots(api);
      assert.ok(cluster);
      await vscode.commands.executeCommand('k3sEtcd.cluster.openPanel', cluster);
      await vscode.commands.executeCommand('k3sEtcd.cluster.openPanel', cluster);
      const tabs = await until('the panel tab', () => {
        const t = vscode.window.tabGroups.all
          .flatMap((g) => g.tabs)
          .filter((x) => x.label === 'etcd: edge-a');
        return t.length > 0 ? t : undefined;
      });
      assert.equal(tabs.length, 1, 'asked twice, one panel');
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    },
  },
  {
    name: 'Generate Certificate Set then Inspect Certificate: a read-only document with the chain and key checks',
    timeoutMs: 45_000,
    fn: async () => {
      const { api } = await activated();
      await vscode.commands.executeCommand('k3sEtcd.certs.generate');
      const certs = await until('the Certificates node with children', async () => {
        const [cluster] = await roots(api);
        if (!cluster) return undefined;
        const node = (await children(api, cluster)).find((n) => n.kind === 'certificates');
        return node && (await children(api, node)).length === 9 ? node : undefined;
      });
      const server = (await children(api, certs)).find((n) => n.label === 'edge-2 server');
      assert.ok(server, 'edge-2 server certificate node');
      await vscode.commands.executeCommand('k3sEtcd.certs.inspect', server);
      const editor = await until('the inspection document', () => {
        const e = vscode.window.activeTextEditor;
        return e?.document.uri.scheme === 'k3s-etcd-cert' ? e : undefined;
      });
      const text = editor.document.getText();
      assert.match(text, /Subject: +CN=edge-2, O=k3s-etcd/);
      assert.match(text, /SANs: +127\.0\.1\.22, edge-2, 127\.0\.0\.1, localhost/);
      assert.match(text, /Chain: +signed by .*ca\.pem/);
      assert.match(text, /Private key: +matches/);
      assert.doesNotMatch(text, /BEGIN .*PRIVATE KEY/, 'no key material in the document');
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    },
  },
];
