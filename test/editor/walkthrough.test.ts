/**
 * Editor tier, the walkthrough (Help > Get Started > our walkthrough) in the real VS Code: steps
 * done before the walkthrough was ever opened show as done when it opens (VS Code's walkthrough
 * service is created lazily and never heard those commands), it opens on the first undone step,
 * a step done from the tree's context menu while it is open ticks at once, and no title or
 * description is cut off at the default window size. Screenshot: walkthrough.png.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { Locator, Page } from 'playwright-core';
import { EXTENSION_ID } from '../../src/shared/commands';
import { WALKTHROUGH_ID } from '../../src/editor/walkthroughSteps';
import {
  copyToTemp,
  openWorkbench,
  REPO_ROOT,
  removeTempDir,
  runFromContextMenu,
  runFromPalette,
  SCREENSHOTS_DIR,
  uiTestScope,
} from './harness/vscode';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const EXAMPLE = join(REPO_ROOT, 'examples', 'edge-lab');
const WALKTHROUGH = `${EXTENSION_ID}#${WALKTHROUGH_ID}`;
const cleanups = uiTestScope();
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  contributes: { walkthroughs: Array<{ id: string; title: string }> };
};
const TITLE = pkg.contributes.walkthroughs.find((w) => w.id === WALKTHROUGH_ID)?.title ?? '';

function step(page: Page, id: string): Locator {
  return page.locator(`button.getting-started-step[data-step-id="${WALKTHROUGH}#${id}"]`);
}

/** Each step's checkbox as the page shows it: `id=true|false`. */
async function checked(page: Page): Promise<string[]> {
  return page
    .locator('button.getting-started-step')
    .evaluateAll((els) =>
      els.map(
        (e) =>
          `${(e.getAttribute('data-step-id') ?? '').split('#').pop()}=${e.getAttribute('aria-checked')}`,
      ),
    );
}

async function waitChecked(page: Page, id: string, timeoutMs: number): Promise<void> {
  await step(page, id)
    .and(page.locator('[aria-checked="true"]'))
    .waitFor({ timeout: timeoutMs })
    .catch(async () => {
      throw new Error(`step ${id} never showed as checked: ${(await checked(page)).join(' ')}`);
    });
}

/** Titles and descriptions of the walkthrough page that the browser cut off (ellipsis or clamp). */
async function cutOff(page: Page): Promise<string[]> {
  return page
    .locator(
      '.gettingStartedSlideDetails .category-title, .gettingStartedSlideDetails .category-description, ' +
        '.getting-started-step .step-title, .getting-started-step .monaco-button',
    )
    .evaluateAll((els) =>
      els
        .filter((e) => e.getClientRects().length > 0)
        .filter((e) => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
        .map((e) => (e.textContent ?? '').replace(/\s+/g, ' ').trim()),
    );
}

test(
  'UI: the walkthrough shows steps done before it opened, opens on the next one, and ticks a step run from the tree',
  { timeout: 240_000 },
  async () => {
    const folder = await copyToTemp(EXAMPLE);
    cleanups.push(() => removeTempDir(folder));
    const page = await openWorkbench({
      name: 'editor-walkthrough',
      folder,
      extension: DEV_EXTENSION,
      settings: { 'k3sEtcd.health.refreshIntervalSeconds': 0 },
      cleanups,
    });
    // The page as the test left it (also on failure), for whoever reads a failure.
    cleanups.push(async () => {
      await page
        .screenshot({ path: join(SCREENSHOTS_DIR, 'walkthrough-last.png') })
        .catch(() => undefined);
    });
    const cluster = page.getByRole('treeitem', { name: /^edge-a\b/ });
    await cluster.waitFor({ timeout: 60_000 });

    // Before the walkthrough was ever opened: the health panel, from the palette.
    await runFromPalette(page, 'K3s etcd: Open etcd Health');
    await page.getByRole('tab', { name: /^etcd health: edge-a/ }).waitFor({ timeout: 30_000 });
    await page.locator('.part.sidebar .composite.title').click(); // keys to the workbench, not the webview

    // Help > Open Walkthrough... (the palette's "Welcome: Open Walkthrough..."), ours by its title.
    await runFromPalette(page, 'Welcome: Open Walkthrough...');
    const input = page.locator('.quick-input-widget input:visible');
    await input.fill(TITLE);
    await page
      .locator('.quick-input-list .monaco-list-row', { hasText: TITLE })
      .first()
      .waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
    await step(page, 'inventory').waitFor({ timeout: 30_000 });

    // The inventory is there and the health panel was opened: both ticked; certificates are next.
    await waitChecked(page, 'inventory', 15_000);
    await waitChecked(page, 'health', 15_000);
    assert.equal(await step(page, 'certificates').getAttribute('aria-checked'), 'false');
    assert.equal(
      await step(page, 'certificates').getAttribute('aria-expanded'),
      'true',
      'the walkthrough opens on the first step not done',
    );

    // Right-click edge-a > Generate Certificate Set, while the walkthrough is open.
    // A re-render of the tree can swallow the right-click: retried, never run twice.
    await runFromContextMenu(
      page,
      cluster,
      /^Generate Certificate Set$/,
      page.locator('.notifications-toasts', { hasText: /Certificates for edge-a/ }),
      'walkthrough-generate',
    );
    await page.getByRole('tab', { name: /^Walkthrough: / }).click();
    await waitChecked(page, 'certificates', 15_000);
    assert.deepEqual(await checked(page), [
      'inventory=true',
      'certificates=true',
      'provision=false',
      'health=true',
      'backup=false',
      'migrate=false',
      'k3s=false',
      'ipchange=false',
    ]);

    // Nothing cut off at the default size, with the next step (provision) expanded.
    const health = page.getByRole('tab', { name: /^etcd health: edge-a/ });
    await health.hover();
    await health.locator('.tab-actions .action-label').click();
    await step(page, 'provision').click();
    await page.mouse.move(1300, 880);
    for (const t of await page.locator('.notification-toast .codicon-notifications-clear').all())
      await t.click().catch(() => undefined);
    assert.deepEqual(await cutOff(page), [], 'cut off at 1400x900');
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'walkthrough.png') });

    // Help: Welcome lists the walkthrough by its title, in full.
    await runFromPalette(page, 'Help: Welcome');
    const back = page.locator('.gettingStartedSlideDetails .prev-button:visible');
    if (await back.count()) await back.first().click();
    const entry = page.locator('button.getting-started-category', { hasText: TITLE });
    await entry.first().waitFor({ timeout: 15_000 });
    const entryCut = await entry
      .first()
      .locator('.category-title')
      .evaluate((e) => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1);
    assert.equal(entryCut, false, `the Welcome page cuts off "${TITLE}"`);
  },
);
