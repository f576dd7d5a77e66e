/**
 * Editor tier, workspace trust: the development build in the REAL VS Code with workspace trust
 * ON, on a folder that is not trusted (Restricted Mode). Its inventory points every port of its
 * one host at this test's own TCP listeners on loopback (etcd's client port, the metrics port,
 * SSH), counting connections, and its settings ask for a 1 s health and metrics poll and a 3 s
 * snapshot schedule. Untrusted: the tree shows the inventory with "Trust this workspace to
 * connect", a command that connects refuses with "Manage Workspace Trust", and over several
 * would-be poll and snapshot intervals the listeners see nothing and no snapshot file appears.
 * Then the person clicks the item and trusts the folder: the pollers connect, the schedule runs,
 * and the same command reaches SSH.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { generateCertificateSet } from '../../src/core/pki/set';
import { findFiles } from '../../scripts/harness/files';
import { makeTempDir, removeTempDir, sleep, waitUntil } from '../../scripts/harness/processes';
import {
  launchBrowser,
  REPO_ROOT,
  runFromPalette,
  SCREENSHOTS_DIR,
  startVsCodeServer,
  uiTestScope,
  watchConsole,
  type VsCodeServer,
} from './harness/vscode';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const cleanups = uiTestScope();

/** A loopback listener that counts connection attempts and drops each at once. */
async function countingListener(): Promise<{ port: number; count: () => number }> {
  let n = 0;
  const server: Server = createServer((socket) => {
    n++;
    socket.destroy();
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  cleanups.push(() => new Promise<void>((res) => server.close(() => res())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { port: address.port, count: () => n };
}

/** What the extension wrote to its "K3s etcd" output log so far. */
function extensionLog(server: VsCodeServer): string {
  return findFiles(join(server.userDataDir, 'logs'), (n) => /K3s etcd\.log$/.test(n))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
}

async function toast(page: Page, re: RegExp): Promise<void> {
  await page.locator('.notifications-toasts', { hasText: re }).first().waitFor({ timeout: 30_000 });
}

test(
  'UI: an untrusted folder connects to nothing until it is trusted, then it does',
  { timeout: 300_000 },
  async () => {
    const etcd = await countingListener();
    const metrics = await countingListener();
    const ssh = await countingListener();
    const peer = await countingListener();
    const counts = () => ({ etcd: etcd.count(), metrics: metrics.count(), ssh: ssh.count() });

    const ws = await makeTempDir('k3s-etcd-ws-untrusted-');
    cleanups.push(() => removeTempDir(ws));
    const inventory = join(ws, 'k3s-etcd.yaml');
    await writeFile(
      inventory,
      [
        '# Every port of t-1 is a listener of the test that counts connection attempts.',
        'version: 1',
        'clusters:',
        '  - name: edge-t',
        '    datastore: external-etcd',
        `    etcd: { version: v3.6.14, clientPort: ${etcd.port}, peerPort: ${peer.port}, metricsPort: ${metrics.port}, metricsScheme: http }`,
        '    pki: { dir: pki/edge-t }',
        '    hosts:',
        `      - { name: t-1, address: 127.0.0.1, port: ${ssh.port}, user: root, roles: [etcd] }`,
        '',
      ].join('\n'),
    );
    // Real certificates, so nothing stops at "generate certificates first" once trusted.
    const loaded = await loadInventoryFile(inventory);
    assert.equal(loaded.status, 'ok', JSON.stringify(loaded.problems));
    if (loaded.status !== 'ok') return;
    await generateCertificateSet(loaded.inventory.clusters[0]!);
    // The workspace asks for a poll every second and a snapshot every 3 s (0.05 minutes). The
    // same values are user settings too, so Restricted Mode ignoring the workspace's own values
    // (restrictedConfigurations) is not what keeps it quiet: the trust guard must.
    const settings = {
      'k3sEtcd.health.refreshIntervalSeconds': 1,
      'k3sEtcd.health.timeoutMs': 1000,
      'k3sEtcd.metrics.intervalSeconds': 1,
      'k3sEtcd.snapshot.intervalMinutes': 0.05,
    };
    await mkdir(join(ws, '.vscode'), { recursive: true });
    await writeFile(join(ws, '.vscode', 'settings.json'), JSON.stringify(settings, null, 2));

    const server = await startVsCodeServer({
      name: 'editor-trust',
      workspaceTrust: true,
      settings,
    });
    cleanups.push(() => server.stop());
    const browser = await launchBrowser();
    cleanups.push(() => browser.close());
    const page = await browser.newPage();
    const seen = watchConsole(page);
    await mkdir(SCREENSHOTS_DIR, { recursive: true });
    try {
      await page.goto(
        server.workbenchUrl({
          folder: ws,
          payload: [
            ['extensionDevelopmentPath', server.remoteUri(DEV_EXTENSION)],
            ['skipWelcome', 'true'],
          ],
        }),
        { waitUntil: 'domcontentloaded', timeout: 60_000 },
      );
      await page.getByRole('tab', { name: /^K3s etcd/ }).click({ timeout: 60_000 });
      await page.mouse.move(700, 450);

      // Restricted Mode: the inventory with the trust item first, and nothing live.
      const trustItem = page.getByRole('treeitem', {
        name: /^Trust this workspace to connect, Restricted Mode/,
      });
      await trustItem.waitFor({ timeout: 60_000 });
      const cluster = page.getByRole('treeitem', { name: /^edge-t, external etcd · 1 host/ });
      await cluster.waitFor({ timeout: 30_000 });
      await cluster.click();
      await page.getByRole('treeitem', { name: /^t-1, root@127\.0\.0\.1:/ }).waitFor();
      await waitUntil(
        async () => /Restricted Mode: the inventory is shown/.test(extensionLog(server)),
        30_000,
        'the extension logs that it runs in Restricted Mode',
      );
      // A command that connects refuses, and says how to trust.
      await runFromPalette(page, 'K3s etcd: Preview Provisioning Plan');
      await toast(page, /Preview Provisioning Plan needs a trusted workspace/);
      await page
        .locator('.notifications-toasts .monaco-button', { hasText: 'Manage Workspace Trust' })
        .first()
        .waitFor({ timeout: 10_000 });
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'trust-restricted.png') });
      // Five would-be poll intervals and two would-be snapshots: still nothing.
      await sleep(6_000);
      assert.deepEqual(counts(), { etcd: 0, metrics: 0, ssh: 0 }, 'connections while untrusted');
      assert.equal(peer.count(), 0);
      assert.equal(existsSync(join(ws, 'backups')), false, 'a snapshot was attempted');
      assert.doesNotMatch(extensionLog(server), /scheduled snapshot/);

      // The person trusts the folder from the tree item.
      await trustItem.click();
      const trustButton = page.getByRole('button', { name: /^Trust$/ }).first();
      await trustButton.waitFor({ timeout: 30_000 });
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'trust-editor.png') });
      await trustButton.click();

      // Now everything starts: the tree loses the item, health and metrics connect, the
      // schedule runs (and fails against a listener that is not etcd), SSH is reached.
      await page.getByRole('tab', { name: /^K3s etcd/ }).click();
      await trustItem.waitFor({ state: 'detached', timeout: 30_000 });
      await waitUntil(
        async () => etcd.count() > 0 && metrics.count() > 0,
        30_000,
        `health and metrics connect once trusted (${JSON.stringify(counts())})`,
      );
      await waitUntil(
        async () => /scheduled snapshot of edge-t failed/.test(extensionLog(server)),
        30_000,
        'the snapshot schedule runs once trusted',
      );
      assert.match(extensionLog(server), /Workspace trusted: live state and schedules start/);
      await runFromPalette(page, 'K3s etcd: Preview Provisioning Plan');
      await waitUntil(async () => ssh.count() > 0, 30_000, 'the plan preview reaches SSH');
      console.log(`connections after trust: ${JSON.stringify(counts())}`);
    } catch (e) {
      await page
        .screenshot({ path: join(SCREENSHOTS_DIR, 'trust-failure.png') })
        .catch(() => undefined);
      console.error(
        `connections: ${JSON.stringify(counts())}\npage console errors:\n${seen.errors.slice(-30).join('\n')}\n` +
          `extension log:\n${extensionLog(server).split('\n').slice(-30).join('\n')}\n${server.diagnostics(40)}`,
      );
      throw e;
    }
  },
);
