/**
 * Editor tier: "Open etcdctl Terminal" in the real VS Code, against a real mutual-TLS etcd whose
 * certificates our generator made in the workspace. The terminal has the article's five
 * variables, and `etcdctl endpoint health` typed in it succeeds.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import {
  openWorkbench,
  REPO_ROOT,
  SCREENSHOTS_DIR,
  waitForTerminal,
  uiTestScope,
  runFromPalette,
} from './harness/vscode';
import { etcdWorkspace } from './harness/etcdWorkspace';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const cleanups = uiTestScope();

test(
  'UI: Open etcdctl Terminal: the five ETCDCTL_ variables are set and etcdctl endpoint health succeeds; Save etcd Snapshot writes it into backups/',
  { timeout: 180_000 },
  async () => {
    const { ws, etcd } = await etcdWorkspace('k3s-etcd-ws-etcdctl-', cleanups);
    const m = etcd.members[0]!;
    const page = await openWorkbench({
      name: 'editor-etcdctl',
      folder: ws,
      extension: DEV_EXTENSION,
      settings: {
        'terminal.integrated.gpuAcceleration': 'off',
        'k3sEtcd.health.refreshIntervalSeconds': 0,
      },
      cleanups,
    });
    await page.getByRole('treeitem', { name: /^edge-t, / }).waitFor({ timeout: 60_000 });

    await runFromPalette(page, 'K3s etcd: Open etcdctl Terminal');

    // The terminal opens with its message; type as a person would.
    await waitForTerminal(page, /ETCDCTL_\* point at edge-t/, 30_000);
    await page
      .locator('.terminal-wrapper.active .xterm-helper-textarea, .xterm-helper-textarea')
      .first()
      .focus();
    await page.keyboard.type(
      "env | grep -o '^ETCDCTL_[A-Z]*' | sort | tr '\\n' ' '; echo; etcdctl endpoint health\n",
    );
    const text = await waitForTerminal(page, /is healthy|is unhealthy|Error/, 30_000);
    assert.match(text, /ETCDCTL_API ETCDCTL_CACERT ETCDCTL_CERT ETCDCTL_ENDPOINTS ETCDCTL_KEY/);
    assert.match(
      text,
      new RegExp(
        `https://${m.address.replace(/\./g, '\\.')}:${m.clientPort} is healthy: successfully committed proposal`,
      ),
    );
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'etcdctl-terminal.png') });

    // Save etcd Snapshot from the palette: the file lands in backups/edge-t/ with its record.
    await runFromPalette(page, 'K3s etcd: Save etcd Snapshot');
    await page
      .locator('.notifications-toasts', {
        hasText: /Snapshot of edge-t saved: backups\/edge-t\/\d{8}T\d{6}Z\.db/,
      })
      .waitFor({ timeout: 30_000 });
    const saved = await readdir(join(ws, 'backups', 'edge-t'));
    assert.equal(saved.filter((f) => f.endsWith('.db')).length, 1);
    assert.equal(saved.filter((f) => f.endsWith('.json')).length, 1);

    // Show Snapshots: pick it, the restore preview opens; "Restore from This Snapshot…" asks in a
    // modal naming the cluster and the revision; Cancel runs nothing.
    await runFromPalette(page, 'K3s etcd: Show Snapshots');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: /revision \d+/ });
    await row.first().waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
    // The preview is rendered (VS Code's Markdown preview, a webview in two iframes).
    await page
      .frameLocator('iframe.webview.ready')
      .frameLocator('#active-frame')
      .locator('h1', { hasText: 'Restore edge-t from the snapshot of' })
      .waitFor({ timeout: 30_000 });
    // The offer is a notification: a toast, or in the notification center once the toast has
    // timed out (a preview that took long to render).
    const offer = page
      .locator('.notifications-toasts, .notifications-center')
      .getByRole('button', { name: 'Restore from This Snapshot…' })
      .first();
    const toast = await offer.waitFor({ timeout: 15_000 }).then(
      () => true,
      () => false,
    );
    if (!toast) await runFromPalette(page, 'Notifications: Show Notifications');
    await offer.click({ timeout: 15_000 }).catch(async (err: unknown) => {
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'snapshot-restore-offer-failed.png') });
      throw err;
    });
    const dialogBox = page.locator('.monaco-dialog-box');
    await dialogBox
      .getByRole('button', { name: 'Restore', exact: true })
      .waitFor({ timeout: 30_000 });
    const dialog = (await dialogBox.innerText()).replace(/\u00a0/g, ' ');
    assert.match(dialog, /Restore etcd cluster edge-t from the snapshot of .* \(revision \d+\)\?/);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'snapshot-restore-confirm.png') });
    await dialogBox.getByRole('button', { name: 'Cancel' }).click();
    await dialogBox.waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(
      await page.locator('.terminal-tab, .single-terminal-tab', { hasText: /restore/i }).count(),
      0,
    );
    assert.deepEqual(await readdir(join(ws, 'backups', 'edge-t')), saved, 'nothing new');
  },
);
