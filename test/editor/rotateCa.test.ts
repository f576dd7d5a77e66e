/**
 * Editor tier, "Rotate CA…" in the real VS Code: one real systemd host (nspawn, sshd on
 * 127.0.1.86) running a one-member etcd with mutual TLS. The three phases run from the
 * Certificates node's context menu and then from the "Run Phase N" button each finished phase
 * offers; each phase is shown in a modal (both CAs, what the host gets, the rolling order) and
 * confirmed; between phases the Certificates node says where the rotation is ("CA rotation:
 * phase 2 of 3"). At the end the node no longer shows a rotation, the workspace's CA is the new
 * one with the old kept aside, and etcd answers this tool's client under the new CA. The
 * three-member rollout with a writer, resumption and an old-CA client refused are the system
 * tier's (certsRotate); what only the editor does is here.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { healthyClient } from '../../src/core/etcd/connection';
import type { Cluster } from '../../src/core/inventory/types';
import { loadCluster } from '../../scripts/harness/lab';
import { provisionedLab } from '../../scripts/harness/provisionedLab';
import {
  openWorkbench,
  REPO_ROOT,
  runFromContextMenu,
  SCREENSHOTS_DIR,
  uiTestScope,
} from './harness/vscode';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const ADDR = '127.0.1.86';
const cleanups = uiTestScope();

const text = async (page: Page, selector: string) =>
  (await page.locator(selector).innerText()).replace(/\u00a0/g, ' ');

let ws = '';
let cluster: Cluster;
let page: Page;
let oldCa = '';

before(async () => {
  const lab = await provisionedLab(
    'k3s-etcd-ws-rotate-',
    [{ name: 'edge-1', address: ADDR, roles: ['etcd'] }],
    { cluster: 'lab' },
  );
  cleanups.push(() => lab.stop());
  ws = lab.dir;
  cluster = lab.cluster;
  oldCa = new X509Certificate(await readFile(join(cluster.pki.dir, 'ca.pem'))).fingerprint256;

  page = await openWorkbench({
    name: 'editor-rotate-ca',
    folder: ws,
    extension: DEV_EXTENSION,
    settings: { 'k3sEtcd.health.refreshIntervalSeconds': 0 },
    cleanups,
  });
  const row = page.getByRole('treeitem', { name: /^lab, / });
  await row.waitFor({ timeout: 60_000 });
  if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
});

const certsRow = () => page.getByRole('treeitem', { name: /^Certificates, / });

/** Waits for the phase's modal, checks its words, confirms it. */
async function confirmPhase(phase: 1 | 2 | 3): Promise<string> {
  const box = page.locator('.monaco-dialog-box');
  const button = box.getByRole('button', { name: `Run Phase ${phase}` });
  try {
    await button.waitFor({ timeout: 90_000 });
  } catch (err) {
    await page.screenshot({ path: join(SCREENSHOTS_DIR, `rotate-ca-phase-${phase}-failure.png`) });
    const toasts = await text(page, '.notifications-toasts').catch(() => '(none)');
    throw new Error(`no confirmation of phase ${phase} within 90 s. Notifications: ${toasts}`, {
      cause: err,
    });
  }
  const dialog = await text(page, '.monaco-dialog-box');
  assert.match(
    dialog,
    new RegExp(
      `Run phase ${phase} of 3 of the CA rotation of lab on 1 member\\(s\\), one at a time\\?`,
    ),
  );
  assert.match(dialog, new RegExp(`CA rotation of lab, phase ${phase} of 3: `));
  assert.match(dialog, /old CA: .*SHA-256 [0-9A-F:]{95}/);
  assert.match(dialog, /new CA: .*SHA-256 [0-9A-F:]{95}/);
  assert.match(dialog, /edge-1 \(member edge-1\) gets /);
  assert.doesNotMatch(dialog, /PRIVATE KEY/);
  if (phase === 1) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'rotate-ca-confirm.png') });
  await button.click();
  return dialog;
}

/** Waits for a notification matching `re` (the end of a phase). */
async function toast(re: RegExp, shot: string) {
  const t = page.locator('.notifications-toasts .notification-toast', { hasText: re });
  try {
    await t.first().waitFor({ timeout: 180_000 });
  } catch (err) {
    await page.screenshot({ path: join(SCREENSHOTS_DIR, shot) });
    const toasts = await text(page, '.notifications-toasts').catch(() => '(none)');
    throw new Error(`no ${re} within 180 s. Notifications: ${toasts}`, { cause: err });
  }
  return t.first();
}

test(
  'UI: Rotate CA… from the Certificates node, three confirmed phases; the node says where the rotation is; at the end the new CA only',
  { timeout: 600_000 },
  async () => {
    await certsRow().waitFor({ timeout: 30_000 });
    assert.doesNotMatch((await certsRow().getAttribute('aria-label')) ?? '', /CA rotation/);

    await runFromContextMenu(
      page,
      certsRow(),
      'Rotate CA…',
      page
        .locator('.monaco-dialog-box')
        .or(page.locator('.notifications-toasts', { hasText: 'Planning the CA rotation' })),
      'rotate-ca-right-click',
    );
    const first = await confirmPhase(1);
    assert.match(first, /\(made now; kept in rotation\/ in the pki folder until phase 3\)/);

    const one = await toast(
      /phase 1 of the CA rotation done on every host/,
      'rotate-ca-1-failure.png',
    );
    // The tree follows rotation.json: the phase that is due, said first on the node.
    await page
      .getByRole('treeitem', { name: /^Certificates, CA rotation: phase 2 of 3 · / })
      .waitFor({ timeout: 30_000 });
    assert.ok(existsSync(join(cluster.pki.dir, 'rotation.json')));
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'rotate-ca-between-phases.png') });

    await one.getByRole('button', { name: 'Run Phase 2' }).click();
    const second = await confirmPhase(2);
    assert.match(second, /edge-1\/server\.pem \(until \d{4}-\d{2}-\d{2}\).* under the new CA/);
    const two = await toast(
      /phase 2 of the CA rotation done on every host/,
      'rotate-ca-2-failure.png',
    );
    await page
      .getByRole('treeitem', { name: /^Certificates, CA rotation: phase 3 of 3 · / })
      .waitFor({ timeout: 30_000 });

    await two.getByRole('button', { name: 'Run Phase 3' }).click();
    await confirmPhase(3);
    await toast(
      /lab: CA rotation finished; every host trusts only the new CA \(the old one is kept in ca-old-\d{8}T\d{6}Z\/ in the pki folder\)/,
      'rotate-ca-3-failure.png',
    );

    // The node is back to the certificate set, now under the new CA; the old CA kept aside.
    await page
      .getByRole('treeitem', { name: /^Certificates, \d+ certificates · CA until / })
      .waitFor({ timeout: 30_000 });
    assert.equal(existsSync(join(cluster.pki.dir, 'rotation.json')), false);
    const newCa = new X509Certificate(await readFile(join(cluster.pki.dir, 'ca.pem')));
    assert.notEqual(newCa.fingerprint256, oldCa);
    const kept = (await readdir(cluster.pki.dir)).filter((n) => n.startsWith('ca-old-'));
    assert.equal(kept.length, 1, kept.join());
    assert.equal(
      new X509Certificate(await readFile(join(cluster.pki.dir, kept[0]!, 'ca.pem'))).fingerprint256,
      oldCa,
    );
    const server = new X509Certificate(
      await readFile(join(cluster.pki.dir, 'edge-1', 'server.pem')),
    );
    assert.ok(server.checkIssued(newCa), 'the member certificate is under the new CA');
    // etcd answers this tool's client under the new CA only.
    const { client } = await healthyClient(await loadCluster(join(ws, 'k3s-etcd.yaml')));
    try {
      await client.put('/rotate/after').value('ok');
      assert.equal(await client.get('/rotate/after').string(), 'ok');
    } finally {
      client.close();
    }
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'rotate-ca-done.png') });
  },
);
