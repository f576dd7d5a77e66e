/**
 * Editor tier: the development build of k3s-etcd in the REAL VS Code 1.100.3 (the server inside
 * code-server, offline), driven by headless Chromium.
 * (a) the in-host suite (out/test/editor-suite.js) runs in the Node extension host;
 * (b) a person's view: click the "K3s etcd" activity-bar icon, expand edge-a, see edge-1, and a
 *     screenshot in test-results/screenshots/tree.png; fails on an activation error.
 * Run: node --import tsx --test test/editor/editor.test.ts (after `npm run build`).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import {
  assertSuitePassed,
  copyToTemp,
  ensureVsCode,
  expandUntil,
  launchBrowser,
  REPO_ROOT,
  removeTempDir,
  runFromPalette,
  SCREENSHOTS_DIR,
  startVsCodeServer,
  watchConsole,
} from './harness/vscode';
import { httpStatus } from '../../scripts/harness/net';
import type { Browser, VsCodeServer } from './harness/vscode';

const EXAMPLE = join(REPO_ROOT, 'examples', 'edge-lab');

const SUITE_JS = join(REPO_ROOT, 'out', 'test', 'editor-suite.js');
const EXT_ID = 'k3s-etcd.k3s-etcd';
/** The development extension under test: the repo, or another build (e.g. a copy) via env. */
const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse())
    await c().catch((e: unknown) => console.error('cleanup:', e));
});

before(async () => {
  await ensureVsCode();
  for (const f of [join(DEV_EXTENSION, 'dist', 'extension.js'), SUITE_JS]) {
    assert.ok(existsSync(f), `${f} is missing: run \`npm run build\` first`);
  }
});

test(
  'in-host editor suite passes against the development build',
  { timeout: 240_000 },
  async () => {
    const folder = await copyToTemp(EXAMPLE);
    cleanups.push(() => removeTempDir(folder));
    const server = await startVsCodeServer({
      name: 'editor-suite',
      env: { K3S_ETCD_EXPECT_EXTENSION_PATH: DEV_EXTENSION },
    });
    cleanups.push(() => server.stop());
    await assertSuitePassed(
      'editor suite',
      { server, folder, extensionDevelopmentPath: DEV_EXTENSION, extensionTestsPath: SUITE_JS },
      5,
    );
  },
);

test(
  'the VS Code server refuses every request without its connection token (kept in a 0600 file)',
  { timeout: 120_000 },
  async () => {
    const folder = await copyToTemp(EXAMPLE);
    cleanups.push(() => removeTempDir(folder));
    const server = await startVsCodeServer({ name: 'editor-token' });
    cleanups.push(() => server.stop());
    const file = server.connectionTokenFile;
    assert.equal(statSync(file).mode & 0o777, 0o600, file);
    assert.equal(readFileSync(file, 'utf8').trim(), server.connectionToken);
    assert.match(server.connectionToken, /^[\w-]{43}$/);
    // Without the token (or with a wrong one): 403, for the workbench and for files alike.
    for (const path of [
      '/',
      `/?folder=${folder}`,
      `/?tkn=${'x'.repeat(43)}&folder=${folder}`,
      `/vscode-remote-resource?path=${join(folder, 'k3s-etcd.yaml')}`,
    ]) {
      assert.equal(await httpStatus(`${server.baseUrl}${path}`, 5_000), 403, path);
    }
    // With it: a redirect that keeps it in a cookie, then the workbench itself.
    const url = server.workbenchUrl({ folder });
    assert.ok(url.startsWith(`${server.baseUrl}/?tkn=${server.connectionToken}&`), url);
    const first = await fetch(url, { redirect: 'manual' });
    assert.equal(first.status, 302);
    assert.match(
      first.headers.get('set-cookie') ?? '',
      new RegExp(`^vscode-tkn=${server.connectionToken};`),
    );
    const target = new URL(first.headers.get('location') ?? '', url);
    assert.equal(target.searchParams.get('tkn'), null, 'the token leaves the address bar');
    assert.equal(target.searchParams.get('folder'), folder);
    const page = await fetch(target, {
      headers: { cookie: `vscode-tkn=${server.connectionToken}` },
    });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
  },
);

/** Error-severity notifications currently shown (toasts), as text. */
async function errorToasts(page: Page): Promise<string[]> {
  const items = page.locator('.notifications-toasts .notification-list-item').filter({
    has: page.locator('.codicon-error, .codicon-notifications-error'),
  });
  return (await items.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
}

async function waitForLog(server: VsCodeServer, re: RegExp, timeoutMs: number): Promise<boolean> {
  for (
    const end = Date.now() + timeoutMs;
    Date.now() < end;
    await new Promise((r) => setTimeout(r, 200))
  ) {
    if (re.test(server.extensionHostLog())) return true;
  }
  return re.test(server.extensionHostLog());
}

test('UI: the K3s etcd view shows edge-a and its hosts', { timeout: 240_000 }, async () => {
  const folder = await copyToTemp(EXAMPLE);
  cleanups.push(() => removeTempDir(folder));
  const server = await startVsCodeServer({ name: 'editor-ui' });
  cleanups.push(() => server.stop());
  const browser: Browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const page = await browser.newPage();
  const seen = watchConsole(page);

  // Only extensionDevelopmentPath: the repo is loaded as a development extension, no test runner.
  const url = server.workbenchUrl({
    folder,
    payload: [
      ['extensionDevelopmentPath', server.remoteUri(DEV_EXTENSION)],
      ['skipWelcome', 'true'],
    ],
  });
  const shot = join(SCREENSHOTS_DIR, 'tree.png');
  await mkdir(SCREENSHOTS_DIR, { recursive: true });
  try {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });

    const icon = page.getByRole('tab', { name: /^K3s etcd/ });
    await icon.click({ timeout: 60_000 });
    await page.mouse.move(700, 450); // away from the icon: no hover tooltip in the picture
    // The container has one view, so VS Code hides its pane header: wait for the view's tree.
    await page.locator('.pane-body .monaco-list').first().waitFor({ timeout: 30_000 });

    const cluster = page.getByRole('treeitem', { name: /^edge-a\b/ });
    await cluster.waitFor({ timeout: 60_000 });
    if ((await cluster.getAttribute('aria-expanded')) !== 'true') await cluster.click();
    await page.getByRole('treeitem', { name: /^edge-1\b/ }).waitFor({ timeout: 30_000 });
    for (const h of ['edge-2', 'edge-3']) {
      await page
        .getByRole('treeitem', { name: new RegExp(`^${h}\\b`) })
        .waitFor({ timeout: 10_000 });
    }
    assert.equal(await cluster.getAttribute('aria-expanded'), 'true');

    // Activation really happened, and did not fail (the tree alone could come from a half-done activate()).
    const activatedRe = new RegExp(`_doActivateExtension ${EXT_ID.replace('.', '\\.')}\\b`);
    assert.ok(
      await waitForLog(server, activatedRe, 15_000),
      `the extension host log never shows ${EXT_ID} activating\n${server.diagnostics(40)}`,
    );
    const failRe = new RegExp(`Activating extension '?${EXT_ID.replace('.', '\\.')}'? failed`, 'i');
    assert.doesNotMatch(
      server.extensionHostLog(),
      failRe,
      `activation failed\n${server.diagnostics(40)}`,
    );
    assert.deepEqual(
      seen.errors.filter((l) => failRe.test(l)),
      [],
      'the workbench reported an activation error',
    );
    const toasts = await errorToasts(page);
    assert.deepEqual(toasts, [], 'error notifications are shown');
    await page.screenshot({ path: shot });

    // Generate the certificate set from the command palette, as a person would.
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ timeout: 15_000 });
    await input.fill('>K3s etcd: Generate Certificate Set');
    await page
      .locator('.quick-input-list .monaco-list-row', { hasText: 'Generate Certificate Set' })
      .first()
      .waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
    await page
      .locator('.notifications-toasts', {
        hasText: /Certificates for edge-a: wrote 9 certificates and their keys \(18 files\)/,
      })
      .waitFor({ timeout: 60_000 });
    const pki = join(folder, 'pki', 'edge-a');
    for (const [file, mode] of [
      ['ca.pem', 0o644],
      ['ca-key.pem', 0o600],
      ['edge-2/server.pem', 0o644],
      ['edge-2/server-key.pem', 0o600],
      ['client/admin-key.pem', 0o600],
      ['index.json', 0o644],
    ] as const) {
      assert.equal(statSync(join(pki, file)).mode & 0o777, mode, file);
    }
    // The .gitignore offer appears; the tree gains the certificates with their expiry.
    await page
      .locator('.notifications-toasts', { hasText: /not ignored by git/ })
      .waitFor({ timeout: 15_000 });
    // Wait for the refreshed node (the tree follows index.json a moment after the files land).
    const certs = page.getByRole('treeitem', {
      name: /^Certificates, 9 certificates · CA until \d{4}-\d{2}-\d{2}/,
    });
    await certs.waitFor({ timeout: 30_000 });
    await certs.click();
    await page.getByRole('treeitem', { name: /^edge-1 server\b/ }).waitFor({ timeout: 15_000 });
    await page
      .getByRole('treeitem', { name: /^CA, until \d{4}-\d{2}-\d{2}/ })
      .waitFor({ timeout: 15_000 });
    // Certificates but no etcd on the hosts yet (nothing listens at 127.0.1.2x): the cluster is
    // "not provisioned yet" in the neutral colour, not red "0/3 healthy", with Provision etcd as
    // its inline action; each member says the same.
    const fresh = page.getByRole('treeitem', { name: /^edge-a, not provisioned yet$/ });
    await fresh.waitFor({ timeout: 60_000 });
    await expandUntil(
      page,
      page.getByRole('treeitem', { name: /^edge-1, / }),
      page.getByRole('treeitem', {
        name: /^etcd · not provisioned yet, https:\/\/127\.0\.1\.21:2379$/,
      }),
    );
    assert.equal(
      await page.getByRole('treeitem', { name: /connection refused|0\/3 healthy/ }).count(),
      0,
      'nothing in the tree reads as a failure',
    );
    // Each member offers Provision etcd inline too (its host's task).
    const member = page.getByRole('treeitem', {
      name: /^etcd · not provisioned yet, https:\/\/127\.0\.1\.21:2379$/,
    });
    await member.hover();
    await member
      .locator('.action-label[aria-label^="Provision etcd"]')
      .waitFor({ state: 'visible', timeout: 15_000 });
    // The picture shows the tree, not the toasts of generating the certificates.
    await runFromPalette(page, 'Notifications: Clear All Notifications');
    await page
      .locator('.notification-toast')
      .first()
      .waitFor({ state: 'detached', timeout: 15_000 });
    await fresh.hover();
    await fresh
      .locator('.action-label[aria-label^="Provision etcd"]')
      .waitFor({ state: 'visible', timeout: 15_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'tree-not-provisioned.png') });
    // Fold the hosts so the certificates fit in the picture.
    for (const h of ['edge-1', 'edge-2', 'edge-3']) {
      const item = page.getByRole('treeitem', { name: new RegExp(`^${h}, `) });
      if ((await item.getAttribute('aria-expanded')) === 'true') await item.click();
    }
    await page.mouse.move(700, 450);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'certificates.png') });
    assert.deepEqual(await errorToasts(page), [], 'error notifications after generating');

    // The health panel makes the tree's decision: a neutral notice with Provision etcd, not a
    // red "0/3 healthy" with an error icon on every member.
    await runFromPalette(page, 'K3s etcd: Open etcd Health');
    const view = page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
    const notice = view.locator('[data-testid=not-provisioned]');
    await notice.waitFor({ timeout: 60_000 });
    assert.match(
      await notice.innerText(),
      /^Not provisioned yet: nothing answers and this workspace has not provisioned it\./,
    );
    await view
      .locator('[data-testid=summary].muted', { hasText: /^not provisioned yet$/ })
      .waitFor({ timeout: 10_000 });
    const provision = notice.getByRole('button', { name: 'Provision etcd' });
    await provision.waitFor({ timeout: 10_000 });
    await notice.getByRole('button', { name: 'Preview Provisioning Plan' }).waitFor();
    // Each address in the Health tab says what it answered, in the neutral colour.
    const healthRows = view.locator('table[aria-label="endpoint health"] tr');
    await healthRows.nth(3).waitFor({ timeout: 10_000 });
    assert.match(await healthRows.nth(1).innerText(), /not provisioned yet/);
    assert.equal(
      await view.locator('.bad, .error, vscode-icon[name=error]').count(),
      0,
      'nothing in the panel is red or carries an error icon',
    );
    await runFromPalette(page, 'Notifications: Clear All Notifications');
    await page.mouse.move(700, 450);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'health-not-provisioned.png') });
    // Its button runs the cluster's provisioning task (its terminal opens in the panel; the dry
    // run finds no sshd on these hosts, which is not this test's business).
    await provision.click();
    await page
      .locator('.part.panel', { hasText: 'provision etcd (edge-a)' })
      .waitFor({ timeout: 30_000 });
  } catch (e) {
    await page
      .screenshot({ path: join(SCREENSHOTS_DIR, 'tree-failure.png') })
      .catch(() => undefined);
    console.error(
      `page console errors:\n${seen.errors.slice(-30).join('\n')}\n${server.diagnostics(40)}`,
    );
    throw e;
  }
  assert.ok(existsSync(shot));
});
