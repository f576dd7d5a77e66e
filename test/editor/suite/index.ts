/**
 * Editor suite, run INSIDE the real VS Code extension host with the development build of
 * k3s-etcd (extensionDevelopmentPath = the repo root) and examples/edge-lab (a temp copy) open.
 * Bundled to out/test/editor-suite.js; VS Code calls `run()`.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import * as vscode from 'vscode';
import { activated, assertClusterTree, EXTENSION_ID } from './api';
import { behaviourTests } from './behaviour';
import { runInHostTests } from './runner';

export async function run(): Promise<void> {
  await runInHostTests('editor', [
    {
      name: 'the workspace is the trusted temp copy of edge-lab',
      fn: () => {
        assert.equal(vscode.workspace.isTrusted, true, 'workspace is untrusted (Restricted Mode)');
        const folders = vscode.workspace.workspaceFolders ?? [];
        assert.equal(
          folders.length,
          1,
          `workspace folders: ${folders.map((f) => f.uri.toString()).join(', ')}`,
        );
      },
    },
    {
      name: 'the development build of k3s-etcd is present',
      fn: () => {
        const ext = vscode.extensions.getExtension(EXTENSION_ID);
        assert.ok(
          ext,
          `${EXTENSION_ID} missing; extensions: ${vscode.extensions.all.map((e) => e.id).join(', ')}`,
        );
        const expected = process.env['K3S_ETCD_EXPECT_EXTENSION_PATH'];
        if (expected !== undefined) assert.equal(resolve(ext.extensionPath), resolve(expected));
      },
    },
    {
      name: 'activates without throwing and returns the API',
      fn: async () => {
        const { api } = await activated();
        assert.ok(api.activationMs >= 0, `activationMs ${api.activationMs}`);
      },
    },
    {
      name: 'every contributed command is registered',
      fn: async () => {
        const { ext } = await activated();
        const pkg = ext.packageJSON as { contributes?: { commands?: Array<{ command: string }> } };
        const contributed = (pkg.contributes?.commands ?? []).map((c) => c.command);
        assert.ok(contributed.length > 0, 'package.json contributes no commands');
        const registered = new Set(await vscode.commands.getCommands(true));
        const missing = contributed.filter((c) => !registered.has(c));
        assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
      },
    },
    {
      name: 'the tree shows cluster edge-a with hosts edge-1..3',
      fn: async () => {
        const { api } = await activated();
        await assertClusterTree(api, 'edge-a', ['edge-1', 'edge-2', 'edge-3']);
      },
    },
    ...behaviourTests,
  ]);
}
