/**
 * Editor tier: "Export Monitoring Config…" in the real VS Code on a workspace whose certificate
 * set our generator made. The plan is shown rendered (targets, the monitoring certificate to
 * issue, the files), a modal asks before anything is written; after Export the files are in
 * monitoring/edge-t/ beside the inventory (0600 where they name the key file, no key in any),
 * the monitoring client certificate in the pki folder, and prometheus.yml is open.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import {
  openWorkbench,
  REPO_ROOT,
  runFromPalette,
  SCREENSHOTS_DIR,
  uiTestScope,
} from './harness/vscode';
import { etcdWorkspace } from './harness/etcdWorkspace';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const cleanups = uiTestScope();

test(
  'UI: Export Monitoring Config… previews, asks, writes monitoring/edge-t/ and opens prometheus.yml',
  { timeout: 180_000 },
  async () => {
    const { ws, pki } = await etcdWorkspace('k3s-etcd-ws-monitoring-', cleanups);
    const page = await openWorkbench({
      name: 'editor-monitoring',
      folder: ws,
      extension: DEV_EXTENSION,
      settings: { 'k3sEtcd.health.refreshIntervalSeconds': 0 },
      cleanups,
    });
    await page.getByRole('treeitem', { name: /^edge-t, / }).waitFor({ timeout: 60_000 });

    await runFromPalette(page, 'K3s etcd: Export Monitoring Config…');
    await page
      .frameLocator('iframe.webview.ready')
      .frameLocator('#active-frame')
      .locator('h1', { hasText: 'Export monitoring config: edge-t' })
      .waitFor({ timeout: 30_000 });
    const dialogBox = page.locator('.monaco-dialog-box');
    await dialogBox
      .getByRole('button', { name: 'Export', exact: true })
      .waitFor({ timeout: 30_000 });
    const dialog = (await dialogBox.innerText()).replace(/\u00a0/g, ' ');
    assert.match(
      dialog,
      /Write 5 monitoring files for edge-t into monitoring\/edge-t and issue the monitoring client certificate\?/,
    );
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'monitoring-export-confirm.png') });
    await dialogBox.getByRole('button', { name: 'Export', exact: true }).click();
    await page.getByRole('tab', { name: /^prometheus\.yml/ }).waitFor({ timeout: 30_000 });

    const out = join(ws, 'monitoring', 'edge-t');
    const names = (await readdir(out)).sort();
    assert.deepEqual(names, [
      'grafana-dashboard.json',
      'kube-prometheus-stack-values.yaml',
      'kubectl-secret.sh',
      'prometheus.yml',
      'rules.yml',
    ]);
    for (const n of names) {
      const text = await readFile(join(out, n), 'utf8');
      assert.doesNotMatch(text, /PRIVATE KEY/, n);
      const mode = (await stat(join(out, n))).mode & 0o777;
      assert.equal(mode, text.includes('monitoring-key.pem') ? 0o600 : 0o644, n);
    }
    assert.match(
      await readFile(join(out, 'prometheus.yml'), 'utf8'),
      new RegExp(`key_file: ${join(pki, 'client/monitoring-key.pem').replace(/[.]/g, '\\.')}`),
    );
    assert.equal((await stat(join(pki, 'client/monitoring-key.pem'))).mode & 0o777, 0o600);
  },
);
