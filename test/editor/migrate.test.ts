/**
 * Editor tier: "Migrate SQLite State to etcd…" in the real VS Code, from a backup in the
 * workspace (a real kine-shaped SQLite database and its token) into a real mutual-TLS etcd: the
 * dry-run report opens, the modal names the key count, and after "Migrate" the notification says
 * the target was verified; etcd holds the latest state.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { createEndpointClient } from '../../src/core/etcd/client';
import {
  KineLog,
  k8sProto,
  kineDdl,
  sealBootstrap,
  sqlite,
} from '../../scripts/harness/kineFixture';
import { admin } from '../integration/harness/tlsCluster';
import {
  openWorkbench,
  REPO_ROOT,
  runFromPalette,
  SCREENSHOTS_DIR,
  uiTestScope,
} from './harness/vscode';
import { etcdWorkspace } from './harness/etcdWorkspace';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const TOKEN = 'K10ui::server:ui-token';
const cleanups = uiTestScope();

test(
  'UI: Migrate SQLite State to etcd from a backup: report, confirmation, verified',
  { timeout: 180_000 },
  async () => {
    const { ws, pki, etcd } = await etcdWorkspace('k3s-etcd-ws-migrate-', cleanups, {
      roles: ['etcd', 'k3s-server'],
    });
    const m = etcd.members[0]!;
    // A backup as `k3s backup` leaves it: state.db and the token beside it.
    const backup = join(ws, 'backups', m.name, '20261124T120000Z');
    await mkdir(backup, { recursive: true });
    const log = new KineLog();
    for (let i = 0; i < 40; i++) log.create(`/registry/pods/default/p${i}`, k8sProto(i));
    log.delete('/registry/pods/default/p3');
    const b = sealBootstrap(TOKEN, '{"ServerCA":{}}');
    log.create(b.key, b.value);
    sqlite(join(backup, 'state.db'), `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}\n${log.take()}`);
    await writeFile(join(backup, 'token'), `${TOKEN}\n`);
    await writeFile(join(backup, 'manifest.json'), '{"files":[]}\n');

    const page = await openWorkbench({
      name: 'editor-migrate',
      folder: ws,
      extension: DEV_EXTENSION,
      settings: { 'k3sEtcd.health.refreshIntervalSeconds': 0 },
      cleanups,
    });
    await page.getByRole('treeitem', { name: /^edge-t, / }).waitFor({ timeout: 60_000 });
    await runFromPalette(page, 'K3s etcd: Migrate SQLite State to etcd…');
    const source = page.locator('.quick-input-list .monaco-list-row', {
      hasText: `${m.name} 20261124T120000Z`,
    });
    await source.first().waitFor({ timeout: 15_000 });
    await source.first().click();

    const migrate = page
      .locator('.monaco-dialog-box')
      .getByRole('button', { name: 'Migrate', exact: true });
    await migrate.waitFor({ timeout: 60_000 });
    const dialog = (await page.locator('.monaco-dialog-box').innerText()).replace(/\u00a0/g, ' ');
    assert.match(dialog, /Write 40 key\(s\) into the etcd of edge-t\?/);
    assert.match(dialog, /decrypts with the token/);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'migrate-confirm.png') });
    await migrate.click();
    await page
      .locator('.notifications-toasts', {
        hasText: '40 key(s) written, 0 already there; verified: same keys, same bytes',
      })
      .waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'migrate-done.png') });

    const c = await createEndpointClient(etcd.endpoints[0]!, {
      tls: admin(pki),
    });
    try {
      assert.equal(await c.getAll().prefix('/registry/pods/').count(), 39);
      assert.equal(
        await c.get('/registry/pods/default/p3').string(),
        null,
        'the deleted pod stays deleted',
      );
    } finally {
      c.close();
    }
  },
);
