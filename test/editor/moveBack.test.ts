/**
 * Editor tier, "Move K3s Back to SQLite…" in the real VS Code: one real systemd host (nspawn,
 * sshd on 127.0.1.84) that is both a one-member etcd (mutual TLS) and the K3s server (the
 * stand-in, installed offline: the one fake, see test/support/k3sStandIn.ts), etcd holding
 * K3s-like data (a value of 300 KiB, a leased key, the /bootstrap key sealed with the token) and
 * an old state.db on the host. One host is enough: the quick pick between servers is a plain
 * list whose choice the system test (sqliteBack) proves through --server; what only the editor
 * does is the preview, the modal, the progress, the workspace's migrations/ folder and the tree.
 *
 * First from the palette, cancelled at the modal: the plan is rendered, the modal names what
 * stops and what changes, and nothing changes (K3s active on etcd, config.yaml the same, no
 * migrations folder). Then from the cluster's context menu, confirmed: the state.db in the
 * workspace (0600, report beside it) is the one on the host (SHA-256), config.yaml lost its
 * datastore-* keys, the stand-in started on that file and is Ready, the notification and the
 * K3s server's row in the tree say SQLite.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { parse } from 'yaml';
import { healthyClient } from '../../src/core/etcd/connection';
import { sha256File } from '../../src/core/files/hash';
import type { Cluster } from '../../src/core/inventory/types';
import { installK3s } from '../../src/core/k3s/ops';
import { K3S_CONFIG, K3S_DB_DIR, K3S_SQLITE } from '../../src/core/k3s/server';
import { fileTokenStore } from '../../src/core/k3s/token';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { sealBootstrap } from '../../scripts/harness/kineFixture';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { makeTempDir, removeTempDir, waitUntil } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import { STANDIN_LOG_DIR, STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';
import {
  openWorkbench,
  REPO_ROOT,
  runFromContextMenu,
  runFromPalette,
  SCREENSHOTS_DIR,
  uiTestScope,
} from './harness/vscode';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const ADDR = '127.0.1.84';
const TITLE = 'Move K3s Back to SQLite…';
const cleanups = uiTestScope();

const ready = `/usr/local/bin/k3s kubectl get node "$(hostname)" --no-headers | grep -q ' Ready '`;
const text = async (page: Page, selector: string) =>
  (await page.locator(selector).innerText()).replace(/\u00a0/g, ' ');
/** The Markdown preview's rendered page. */
const preview = (page: Page) =>
  page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');

let ws = '';
let host: EdgeHost;
let cluster: Cluster;
let token = '';
let configBefore = '';
let node = '';
let page: Page;

before(async () => {
  ws = await makeTempDir('k3s-etcd-ws-move-back-');
  cleanups.push(() => removeTempDir(ws));
  const key = makeKey(ws, 'id_lab');
  const spec = { name: 'edge-1', address: ADDR, roles: ['etcd', 'k3s-server'] };
  const hosts = await startEdgeHosts({ hosts: [spec], authorizedKeys: [key.publicLine] });
  cleanups.push(() => stopEdgeHosts(hosts));
  host = hosts[0]!;
  await writeKnownHosts(ws, [await hostKeyLine(host)]);
  await stageEtcdBinaries(ws);
  await writeK3sStandIn(join(ws, 'k3s-offline'));
  const file = join(ws, 'k3s-etcd.yaml');
  await writeFile(
    file,
    labInventory({
      cluster: 'lab',
      hosts: [spec],
      identityFile: 'id_lab',
      clusterLines: [`k3s: { version: ${STANDIN_VERSION}, install: offline, disable: [traefik] }`],
    }),
  );
  cluster = await loadCluster(file);
  await generateCertificateSet(cluster);
  const ssh = labSsh(ws);
  const p = await provisionEtcd(cluster, { dryRun: false, ssh });
  assert.equal(p.healthy, true, p.healthSummary);
  // The SQLite state K3s ran on before it moved to etcd, backed up first as the install asks.
  const old = await host.exec(
    `install -d -m 0700 ${K3S_DB_DIR} && printf 'stale state' > ${K3S_SQLITE}`,
  );
  assert.equal(old.code, 0, old.stderr);
  await mkdir(join(ws, 'backups', 'edge-1', '20200101T000000Z'), { recursive: true });
  await writeFile(join(ws, 'backups', 'edge-1', '20200101T000000Z', 'manifest.json'), '{}');
  const tokens = fileTokenStore(file, join(ws, 'tokens'));
  const lines: string[] = [];
  const k = await installK3s(cluster, {
    dryRun: false,
    ssh,
    tokens,
    workspaceDir: ws,
    onLine: (h, l) => lines.push(`[${h}] ${l}`),
  });
  assert.deepEqual(
    k.runs.map((r) => r.status),
    ['changed'],
    lines.join('\n'),
  );
  token = (await tokens.get('lab')) ?? '';
  configBefore = (await host.exec(`cat ${K3S_CONFIG}`)).stdout;
  assert.match(configBefore, /^datastore-endpoint: /m);
  node = (await host.exec('hostname')).stdout.trim();

  const { client } = await healthyClient(cluster);
  try {
    const boot = sealBootstrap(token, JSON.stringify({ ServerCA: { Content: 'x' } }));
    await client.put(boot.key).value(boot.value);
    await client.put('/registry/configmaps/default/big').value(Buffer.alloc(300 * 1024, 7));
    for (let i = 0; i < 5; i++) await client.put(`/registry/pods/default/p-${i}`).value(`pod ${i}`);
    const lease = client.lease(3600, { autoKeepAlive: false });
    await lease.grant();
    await lease.put('/registry/events/default/e-0').value('event 0');
  } finally {
    client.close();
  }

  page = await openWorkbench({
    name: 'editor-move-back',
    folder: ws,
    extension: DEV_EXTENSION,
    settings: { 'k3sEtcd.health.refreshIntervalSeconds': 0 },
    cleanups,
  });
  await page.getByRole('treeitem', { name: /^lab, / }).waitFor({ timeout: 60_000 });
});

/** The K3s server row of edge-1, expanded to; `re` matches its name (label, description). */
async function k3sRow(re: RegExp): Promise<void> {
  const lab = page.getByRole('treeitem', { name: /^lab, / });
  if ((await lab.getAttribute('aria-expanded')) !== 'true') await lab.click();
  const edge = page.getByRole('treeitem', { name: /^edge-1, / });
  await edge.waitFor({ timeout: 15_000 });
  if ((await edge.getAttribute('aria-expanded')) !== 'true') await edge.click();
  await page.getByRole('treeitem', { name: re }).waitFor({ timeout: 60_000 });
}

/** Waits for the modal of the move; returns its text. */
async function modal(shot: string): Promise<string> {
  const box = page.locator('.monaco-dialog-box');
  try {
    await box.getByRole('button', { name: 'Move to SQLite' }).waitFor({ timeout: 90_000 });
  } catch (err) {
    await page.screenshot({ path: join(SCREENSHOTS_DIR, shot) });
    const toasts = await text(page, '.notifications-toasts').catch(() => '(none)');
    throw new Error(`no confirmation within 90 s. Notifications: ${toasts || '(none)'}`, {
      cause: err,
    });
  }
  return text(page, '.monaco-dialog-box');
}

/** What the modal and the preview must say, for this cluster. */
function assertModal(dialog: string): void {
  assert.match(dialog, /Stop K3s on edge-1 and move edge-1 to SQLite\?/);
  assert.match(
    dialog,
    new RegExp(`The cluster's API is down from the first stop until ${node} is Ready on SQLite\\.`),
  );
  assert.match(
    dialog,
    /edge-1: state\.db replaced by the one read from etcd \(the old files moved aside as \*\.old-<time>\); config\.yaml without datastore-endpoint, datastore-cafile, datastore-certfile, datastore-keyfile \(the old file kept beside it\)\./,
  );
  assert.match(dialog, /etcd's data is not changed\./);
  assert.doesNotMatch(dialog, new RegExp(token), 'the token is never shown');
}

test(
  `UI: ${TITLE} from the palette, cancelled at the modal: the plan rendered, the modal names what stops and changes; nothing changed`,
  { timeout: 240_000 },
  async () => {
    // The tree says what K3s runs on now (read on demand, never polled).
    await runFromPalette(page, 'K3s etcd: Refresh K3s Server State');
    await k3sRow(/^K3s server, v1\.31\.4\+k3s1 · Ready · etcd ×1/);

    await runFromPalette(page, `K3s etcd: ${TITLE}`);
    const dialog = await modal('move-back-cancel-failure.png');
    assertModal(dialog);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'move-back-confirm.png') });

    // The plan, rendered: what stops, what is read and written, what changes on the host.
    const view = preview(page);
    await view
      .locator('h1', { hasText: 'Move K3s of lab back to SQLite on edge-1' })
      .waitFor({ timeout: 30_000 });
    const body = (await view.locator('body').innerText()).replace(/\u00a0/g, ' ');
    assert.match(body, /every K3s server and etcd were only read/);
    assert.match(
      body,
      /K3s stopped on every server, one at a time, before etcd is read, so no write made after the read is lost: edge-1 \(stopped until its state\.db is in place\)\. Running now: edge-1\./,
    );
    assert.match(body, /now: \d+ keys, \d+ bytes, 1 leased; \/bootstrap\/[0-9a-f]{12} decrypts/);
    assert.match(
      body,
      /state\.db → \/var\/lib\/rancher\/k3s\/server\/db\/state\.db\.old-\d{8}T\d{6}Z/,
    );
    assert.match(body, /rewritten without datastore-endpoint, datastore-cafile/);
    assert.match(body, new RegExp(`waits until node ${node} is Ready`));
    assert.doesNotMatch(body, new RegExp(token), 'the token is never shown');
    assert.equal(await view.locator('ol li').count(), 6, 'six numbered steps');

    await page.locator('.monaco-dialog-box').getByRole('button', { name: 'Cancel' }).click();
    await page.locator('.monaco-dialog-box').waitFor({ state: 'detached', timeout: 15_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'move-back-preview.png') });

    // Nothing changed: K3s active on etcd, config.yaml and the old state.db the same, no
    // migrations folder in the workspace, no error shown.
    assert.equal((await host.exec('systemctl is-active k3s')).stdout.trim(), 'active');
    assert.equal((await host.exec(`cat ${K3S_CONFIG}`)).stdout, configBefore);
    assert.equal((await host.exec(`cat ${K3S_SQLITE}`)).stdout, 'stale state');
    assert.equal((await host.exec(ready)).code, 0, 'still Ready on etcd');
    assert.equal(existsSync(join(ws, 'migrations')), false, 'no migrations folder left');
    assert.equal(
      await page.locator('.notifications-toasts', { hasText: /failed/ }).count(),
      0,
      'a cancel is no failure',
    );
  },
);

test(
  `UI: right-click the cluster > ${TITLE}, confirm: the verified state.db in the workspace and on the host, config.yaml without datastore keys, Ready on SQLite; the tree says so`,
  { timeout: 300_000 },
  async () => {
    // The cluster's context menu (retried: a re-render can swallow the right-click).
    await runFromContextMenu(
      page,
      page.getByRole('treeitem', { name: /^lab, / }),
      TITLE,
      page
        .locator('.notifications-toasts', { hasText: 'Reading the K3s servers and the etcd' })
        .or(page.locator('.monaco-dialog-box')),
      'move-back-right-click',
    );
    assertModal(await modal('move-back-failure.png'));
    await page
      .locator('.monaco-dialog-box')
      .getByRole('button', { name: 'Move to SQLite' })
      .click();

    // Progress with the phase, then the closing message.
    await page
      .locator('.notifications-toasts', { hasText: 'Moving K3s of lab back to SQLite' })
      .waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'move-back-progress.png') });
    const done = page.locator('.notifications-toasts', {
      hasText: `K3s of lab runs on SQLite on edge-1: node ${node} is Ready.`,
    });
    try {
      await done.waitFor({ timeout: 180_000 });
    } catch (err) {
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'move-back-failure.png') });
      const toasts = await text(page, '.notifications-toasts').catch(() => '(none)');
      throw new Error(`no closing message. Notifications: ${toasts}`, { cause: err });
    }
    const message = (await done.innerText()).replace(/\u00a0/g, ' ');
    assert.match(message, /\d+ keys, 1 leased, verified/);
    assert.match(message, /no longer names datastore-endpoint/);
    assert.doesNotMatch(message, new RegExp(token));

    // The workspace: migrations/<UTC time>/state.db, 0600 in a 0700 folder, its report beside it.
    const stamps = await readdir(join(ws, 'migrations'));
    assert.equal(stamps.length, 1, `one folder per move: ${stamps.join(', ')}`);
    const stamp = stamps[0]!;
    assert.match(stamp, /^\d{8}T\d{6}Z$/);
    const dir = join(ws, 'migrations', stamp);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    const local = join(dir, 'state.db');
    assert.equal((await stat(local)).mode & 0o777, 0o600);
    assert.ok(existsSync(join(dir, 'report.md')), 'the report beside its state.db');
    const { sha256 } = await sha256File(local);
    assert.match(message, new RegExp(`file SHA-256 ${sha256.slice(0, 16)}…`));

    // The host: the same file, root 0600; K3s started on it, Ready; config.yaml without
    // datastore-* keys, the rest kept.
    assert.equal(
      (await host.exec(`sha256sum ${K3S_SQLITE} | cut -d' ' -f1; stat -c '%a %U' ${K3S_SQLITE}`))
        .stdout,
      `${sha256}\n600 root\n`,
    );
    assert.match(
      (await host.exec(`tail -n 1 ${STANDIN_LOG_DIR}/sqlite.log`)).stdout,
      new RegExp(`^sqlite [\\d.]+ ${sha256}$`, 'm'),
      'K3s started on that file',
    );
    await waitUntil(async () => (await host.exec(ready)).code === 0, 30_000, 'Ready on SQLite');
    const config = parse((await host.exec(`cat ${K3S_CONFIG}`)).stdout) as Record<string, unknown>;
    assert.deepEqual(
      Object.keys(config).filter((k) => k.startsWith('datastore-')),
      [],
    );
    assert.equal(config['token'], token);
    assert.match(
      (await host.exec(`cat ${K3S_DB_DIR}/state.db.old-*`)).stdout,
      /stale state/,
      'the old state.db moved aside',
    );

    // The tree: the K3s server's row says it is no longer on etcd.
    await k3sRow(/^K3s server, v1\.31\.4\+k3s1 · Ready · SQLite or embedded etcd/);
    // The closing message expanded for the screenshot, as a person reads it: hover, chevron.
    await done.locator('.notification-toast').first().hover();
    await done
      .locator('.codicon-notifications-expand')
      .first()
      .click({ timeout: 5_000 })
      .catch(() => undefined);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'move-back-done.png') });
  },
);
