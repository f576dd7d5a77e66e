/**
 * Package suite, run INSIDE the real VS Code extension host against k3s-etcd INSTALLED from the
 * VSIX (no development copy of it is loaded: the payload's development extension is the tiny
 * runner in test/package/runner-ext). Proves the packaged bundle loads, activates, reads the
 * inventory, and finds etcd3's .proto files (listMembers against a real etcd).
 * Bundled to out/test/package-suite.js; VS Code calls `run()`.
 */
import assert from 'node:assert/strict';
import { relative, resolve, sep } from 'node:path';
import * as vscode from 'vscode';
import { activated, assertClusterTree, EXTENSION_ID } from '../../editor/suite/api';
import { runInHostTests } from '../../editor/suite/runner';
import type { InHostTest } from '../../editor/suite/runner';

function isInside(child: string, parent: string): boolean {
  const rel = relative(resolve(parent), resolve(child));
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep);
}

export async function run(): Promise<void> {
  const tests: InHostTest[] = [
    {
      name: 'k3s-etcd is the installed copy, not a development one',
      fn: () => {
        const matches = vscode.extensions.all.filter((e) => e.id.toLowerCase() === EXTENSION_ID);
        assert.equal(
          matches.length,
          1,
          `copies of ${EXTENSION_ID}: ${matches.map((e) => e.extensionPath).join(', ')}`,
        );
        const ext = matches[0];
        assert.ok(ext);
        const extDir = process.env['K3S_ETCD_EXPECT_EXTENSIONS_DIR'];
        assert.ok(extDir, 'K3S_ETCD_EXPECT_EXTENSIONS_DIR is not set');
        assert.ok(
          isInside(ext.extensionPath, extDir),
          `${ext.extensionPath} is not under ${extDir}`,
        );
        const repo = process.env['K3S_ETCD_REPO_ROOT'];
        if (repo !== undefined) {
          assert.ok(
            !isInside(ext.extensionPath, repo),
            `${ext.extensionPath} is inside the repo ${repo}`,
          );
        }
        assert.equal(
          ext.extensionKind,
          vscode.ExtensionKind.Workspace,
          'not running in the workspace (Node) host',
        );
      },
    },
    {
      name: 'the installed extension activates and returns the API',
      fn: async () => {
        await activated();
      },
    },
    {
      name: 'the installed extension shows cluster edge-a with hosts edge-1..3',
      fn: async () => {
        const { api } = await activated();
        await assertClusterTree(api, 'edge-a', ['edge-1', 'edge-2', 'edge-3']);
      },
    },
    {
      name: 'Open Documentation shows the packaged README (offline)',
      fn: async () => {
        await activated();
        await vscode.commands.executeCommand('k3sEtcd.docs.open');
        for (const end = Date.now() + 15_000; ; await new Promise((r) => setTimeout(r, 100))) {
          const labels = vscode.window.tabGroups.all.flatMap((g) => g.tabs).map((t) => t.label);
          if (labels.some((l) => /readme\.md/i.test(l))) break;
          assert.ok(Date.now() < end, `no README preview tab; tabs: ${labels.join(', ')}`);
        }
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      },
    },
  ];
  const endpoint = process.env['K3S_ETCD_TEST_ENDPOINT'];
  if (endpoint !== undefined && endpoint !== '') {
    tests.push({
      name: 'listMembers reaches a real etcd (etcd3 finds its .proto files in the bundle)',
      timeoutMs: 30_000,
      fn: async () => {
        const { api } = await activated();
        const members = await api.listMembers([endpoint]);
        assert.ok(Array.isArray(members), `listMembers returned ${String(members)}`);
        assert.deepEqual(
          members.map((m) => m.name),
          [process.env['K3S_ETCD_TEST_MEMBER'] ?? '(K3S_ETCD_TEST_MEMBER unset)'],
        );
        const [m] = members;
        assert.ok(m);
        assert.ok(
          m.clientUrls.includes(endpoint),
          `clientUrls ${JSON.stringify(m.clientUrls)} lack ${endpoint}`,
        );
        assert.equal(m.isLearner, false);
        assert.match(m.id, /^[0-9a-f]+$|^\d+$/i, `member id ${m.id}`);
      },
    });
  }
  await runInHostTests('package', tests);
}
