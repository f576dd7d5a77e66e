/**
 * Editor tier: the NOSPACE rescue in the real VS Code, on a real 3-member mutual-TLS etcd with a
 * 16 MiB quota filled until etcd raises NOSPACE. The tree says so on the cluster (database full,
 * writes refused) with "Maintain etcd…" as its inline action, and the health panel shows a
 * NOSPACE banner (writes fail) whose "Maintain etcd…" button shows the dry run rendered and a
 * modal offering the rescue; after "Rescue" the alarm is gone, writes work, the tree reads
 * healthy again, the banner is gone, and the report is in .k3s-etcd/reports/.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { FrameLocator, Locator, Page } from 'playwright-core';
import {
  openWorkbench,
  REPO_ROOT,
  runFromPalette,
  SCREENSHOTS_DIR,
  uiTestScope,
} from './harness/vscode';
import { etcdWorkspace } from './harness/etcdWorkspace';
import { createEndpointClient } from '../../src/core/etcd/client';
import { admin } from '../../scripts/harness/etcdTls';
import { waitUntil } from '../../scripts/harness/processes';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const QUOTA = 16 * 1024 * 1024;
const cleanups = uiTestScope();

/**
 * The hover tooltip of a tree item, once it matches `re`: hovered again until the deadline (a
 * refresh every 2 s redraws the tree and can take the hover away).
 */
async function tooltip(page: Page, item: Locator, re: RegExp, timeoutMs: number): Promise<string> {
  const hover = page.locator('.monaco-hover, .workbench-hover', { hasText: re }).first();
  const until = Date.now() + timeoutMs;
  for (;;) {
    await page.mouse.move(700, 450);
    await item.hover();
    const shown = await hover.waitFor({ timeout: 5_000 }).then(
      () => true,
      () => false,
    );
    if (shown) return (await hover.innerText()).replace(/\u00a0/g, ' ');
    if (Date.now() > until) {
      const seen = await page.locator('.monaco-hover, .workbench-hover').allInnerTexts();
      assert.fail(`no tooltip matching ${re} within ${timeoutMs} ms; shown: ${seen.join(' | ')}`);
    }
  }
}

/** The shown webview's document (VS Code nests it in two iframes; a hidden one is not it). */
const webview = (page: Page): FrameLocator =>
  page.frameLocator('iframe.webview.ready >> visible=true').frameLocator('#active-frame');

test(
  'UI: a cluster at NOSPACE says so in the tree, and Maintain etcd… rescues it member by member',
  { timeout: 300_000 },
  async () => {
    const { ws, pki, etcd } = await etcdWorkspace('k3s-etcd-ws-maintain-', cleanups, {
      members: 3,
      extraArgs: [`--quota-backend-bytes=${QUOTA}`],
    });
    const k = await createEndpointClient(etcd.endpoints[0]!, {
      tls: admin(pki),
      timeoutMs: 10_000,
    });
    cleanups.push(async () => k.close());
    const big = 'c'.repeat(1024 * 1024);
    let n = 0;
    await waitUntil(
      async () => {
        try {
          await k.put('/registry/configmaps/kube-system/churn').value(`${n++}${big}`);
          return false;
        } catch (err) {
          return /database space exceeded/.test(String(err));
        }
      },
      60_000,
      'NOSPACE raised',
    );

    const page = await openWorkbench({
      name: 'editor-maintain',
      folder: ws,
      extension: DEV_EXTENSION,
      settings: { 'k3sEtcd.health.refreshIntervalSeconds': 2, 'k3sEtcd.health.timeoutMs': 2000 },
      cleanups,
    });
    try {
      const full = page.getByRole('treeitem', {
        name: /^edge-t, NOSPACE: database full, writes refused · /,
      });
      await full.waitFor({ timeout: 60_000 });
      await full.hover();
      const action = full.locator('.action-label[aria-label^="Maintain etcd"]');
      await action.waitFor({ state: 'visible', timeout: 15_000 });
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'tree-nospace.png') });

      // The health panel says it too, in a banner with the rescue one click away.
      await runFromPalette(page, 'K3s etcd: Open etcd Health');
      const banner = webview(page).locator('[data-testid=nospace]');
      await banner.waitFor({ timeout: 60_000 });
      assert.match(
        await banner.innerText(),
        /NOSPACE: the database hit its space quota and every write fails/,
      );
      // Each member's row says what to do: the rescue, in the editor's and the CLI's words.
      await webview(page)
        .locator('table[aria-label="endpoint health"] td', {
          hasText:
            /Active Alarm\(s\): NOSPACE\. Run "Maintain etcd…" on the cluster, or k3s-etcd maintain --rescue:/,
        })
        .first()
        .waitFor({ timeout: 15_000 });
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'health-nospace.png') });
      await banner.getByRole('button', { name: 'Maintain etcd…' }).click();

      const dialogBox = page.locator('.monaco-dialog-box');
      const rescue = dialogBox.getByRole('button', { name: 'Rescue', exact: true });
      await rescue.waitFor({ timeout: 60_000 });
      const dialog = (await dialogBox.innerText()).replace(/\u00a0/g, ' ');
      assert.match(dialog, /edge-t is at its quota \(NOSPACE\): rescue it\?/);
      assert.match(
        dialog,
        /Order \(one at a time, followers first, the leader last\): m-\d, m-\d, m-\d/,
      );
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'maintain-rescue.png') });
      await rescue.click();

      await page
        .locator('.notifications-toasts, .notifications-center', {
          hasText: /edge-t: done: 3 member\(s\) defragmented, NOSPACE disarmed\./,
        })
        .first()
        .waitFor({ timeout: 120_000 });
      const healthy = page.getByRole('treeitem', { name: /^edge-t, 3\/3 healthy/ });
      await healthy.waitFor({ timeout: 30_000 });
      // What filled it, from the rescue's own reading: the cluster's tooltip names it.
      assert.match(
        await tooltip(page, healthy, /Top consumer: /, 30_000),
        /Top consumer: configmaps, \d+(\.\d)? MB of \d+(\.\d)? MB \(\d+%\) in 1 keys \(scanned /,
      );
      // The panel again: healthy, and no banner once the alarm is gone.
      await runFromPalette(page, 'K3s etcd: Open etcd Health');
      const view = webview(page);
      await view
        .locator('[data-testid=summary]', { hasText: /^3\/3 healthy/ })
        .waitFor({ timeout: 60_000 });
      await view.locator('[data-testid=nospace]').waitFor({ state: 'detached', timeout: 30_000 });

      // What a user checks: no alarm, a write works, the report is in the workspace.
      const alarms = await k.maintenance.alarm({ action: 'Get', memberID: '0', alarm: 'None' });
      assert.deepEqual(alarms.alarms, []);
      await k.put('/registry/pods/default/after').value('ok');
      const dir = join(ws, '.k3s-etcd/reports');
      const md = (await readdir(dir)).find((f) => /^rescue-edge-t-.*\.md$/.test(f));
      assert.ok(md, 'a report');
      assert.match(
        await readFile(join(dir, md), 'utf8'),
        /1\. m-\d \(follower\).*\n2\. m-\d \(follower\).*\n3\. m-\d \(leader/,
      );
    } catch (e) {
      await page
        .screenshot({ path: join(SCREENSHOTS_DIR, 'maintain-failure.png') })
        .catch(() => undefined);
      throw e;
    }
  },
);
