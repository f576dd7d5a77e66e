/**
 * Editor tier, provisioning: three real systemd hosts (nspawn, sshd on 127.0.1.6N), a workspace
 * inventory naming them with an SSH key and known_hosts, and the real VS Code running
 * "Tasks: Run Task" → k3s-etcd → "provision etcd (lab)" as a person would: the terminal streams
 * each host's steps, the modal asks before applying, and the cluster ends healthy.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { clientEndpoints } from '../../src/core/inventory/select';
import { adminTls } from '../../src/core/etcd/connection';
import { listMembers } from '../../src/core/etcd/members';
import { generateCertificateSet } from '../../src/core/pki/set';
import { writeBackupKeyPair } from '../../src/core/backup/keygen';
import {
  hostKeyLine,
  startEdgeHosts,
  stopEdgeHosts,
  type EdgeHost,
} from '../../scripts/harness/edgeHosts';
import { makeTempDir, removeTempDir, waitUntil } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import {
  labInventory,
  loadCluster,
  moveSshd,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import {
  openWorkbench,
  REPO_ROOT,
  runFromContextMenu,
  runFromPalette,
  SCREENSHOTS_DIR,
  waitForTerminal,
  uiTestScope,
  waitRepaired,
} from './harness/vscode';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const ADDR = ['127.0.1.61', '127.0.1.62', '127.0.1.63'];
const MOVED = '127.0.1.65';
const cleanups = uiTestScope();

/**
 * Waits for `locator`; when it does not come, fails saying what the window showed instead (an
 * error, a prompt, a progress that never ended), with a screenshot named `shot`.
 */
async function waitOrSay(
  page: Page,
  locator: ReturnType<Page['locator']>,
  timeout: number,
  what: string,
  shot: string,
): Promise<void> {
  try {
    await locator.waitFor({ timeout });
  } catch (err) {
    await page.screenshot({ path: join(SCREENSHOTS_DIR, shot) });
    const text = async (selector: string) =>
      (await page
        .locator(selector)
        .innerText()
        .catch(() => '')) || '(none)';
    throw new Error(
      `${what} not within ${timeout / 1000} s. Notifications: ${await text('.notifications-toasts')}; quick input: ${await text('.quick-input-widget')}`,
      { cause: err },
    );
  }
}

/** What the provisioning test leaves for the repair test: the page, hosts and workspace. */
let lab: { page: Page; hosts: EdgeHost[]; ws: string; file: string } | undefined;

test(
  'UI: "Tasks: Run Task" provisions etcd on three real hosts, streaming each step',
  { timeout: 300_000 },
  async () => {
    const ws = await makeTempDir('k3s-etcd-ws-provision-');
    cleanups.push(() => removeTempDir(ws));
    const key = makeKey(ws, 'id_lab');
    const hosts: EdgeHost[] = await startEdgeHosts({
      hosts: ADDR.map((address, i) => ({ name: `edge-${i + 1}`, address })),
      authorizedKeys: [key.publicLine],
    });
    cleanups.push(() => stopEdgeHosts(hosts));
    await writeKnownHosts(ws, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(ws);
    const file = join(ws, 'k3s-etcd.yaml');
    await writeFile(file, labInventory({ cluster: 'lab', hosts, identityFile: 'id_lab' }));
    const cluster = await loadCluster(file);
    await generateCertificateSet(cluster);

    const page = await openWorkbench({
      name: 'editor-provision',
      folder: ws,
      extension: DEV_EXTENSION,
      settings: {
        'terminal.integrated.gpuAcceleration': 'off',
        'k3sEtcd.health.refreshIntervalSeconds': 0,
      },
      cleanups,
    });
    await page.getByRole('treeitem', { name: /^lab, / }).waitFor({ timeout: 60_000 });

    // Before anything is installed, the plan says what will change, and the checks that need
    // the change first (etcd active, etcd healthy) are "after the change", never passing.
    await runFromPalette(page, 'K3s etcd: Preview Provisioning Plan');
    const view = page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
    const cells = async (text: string) =>
      (await view.locator('tr', { hasText: text }).first().locator('td').allInnerTexts()).map((c) =>
        c.trim(),
      );
    const heading = view.locator('h2', { hasText: /^edge-3: would-change \(\d+ of \d+ steps\)$/ });
    await heading.waitFor({ timeout: 60_000 });
    // The member plan's length (every host's is the same): its last two steps are the waits.
    const steps = Number(/of (\d+) steps/.exec(await heading.innerText())![1]);
    assert.ok(steps > 15, `a member plan of ${steps} steps`);
    assert.deepEqual(await cells('etcd is active'), [
      String(steps - 1),
      'etcd is active (a new cluster waits for its quorum)',
      'after the change (not run in a dry run)',
    ]);
    assert.equal(
      (await cells('etcd answers healthy on https://127.0.1.63:2379'))[2],
      'after the change (not run in a dry run)',
    );
    // The picture shows those rows: the first "after the change" row scrolled to the middle,
    // and waited for until it is inside the preview's viewport.
    const later = view.locator('tr', { hasText: 'after the change' }).first();
    await later.evaluate((e) => e.scrollIntoView({ block: 'center' }));
    const deadline = Date.now() + 10_000;
    while (
      !(await later.evaluate((e) => {
        const r = e.getBoundingClientRect();
        return (
          r.top >= 0 && r.bottom <= (globalThis as unknown as { innerHeight: number }).innerHeight
        );
      }))
    ) {
      assert.ok(Date.now() < deadline, 'the "after the change" rows never came into view');
      await page.waitForTimeout(100);
    }
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-plan.png') });

    // Tasks: Run Task → k3s-etcd → provision etcd (lab)
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ timeout: 15_000 });
    await input.fill('>Tasks: Run Task');
    const runTask = page
      .locator('.quick-input-list .monaco-list-row')
      .filter({ has: page.locator('.label-name', { hasText: /^Tasks: Run Task$/ }) })
      .first();
    await runTask.waitFor({ timeout: 15_000 });
    await runTask.click();
    const group = page
      .locator('.quick-input-list .monaco-list-row', { hasText: 'k3s-etcd' })
      .first();
    await group.waitFor({ timeout: 30_000 }).catch(async (err: unknown) => {
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-run-task-failed.png') });
      throw err;
    });
    await group.click();
    const task = page
      .locator('.quick-input-list .monaco-list-row', { hasText: 'provision etcd (lab)' })
      .first();
    await task.waitFor({ timeout: 30_000 });
    await task.click();
    const noScan = page.locator('.quick-input-list .monaco-list-row', {
      hasText: 'Continue without scanning',
    });
    if (
      await noScan
        .first()
        .isVisible({ timeout: 3000 })
        .catch(() => false)
    )
      await noScan.first().click();

    // The dry run reports, then the modal asks before anything changes.
    await waitForTerminal(page, /edge-3: would-change/, 60_000);
    const apply = page.getByRole('button', { name: 'Apply' });
    await apply.waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-confirm.png') });
    await apply.click();
    // The progress names the step out of the host's total.
    await page
      .locator('.notifications-toasts', { hasText: new RegExp(`edge-\\d: step \\d+/${steps} \\S`) })
      .waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-progress.png') });

    const text = await waitForTerminal(page, /(Done|Failed): exit \d/, 180_000);
    assert.match(text, /Done: exit 0/, text);
    // The terminal shows the end of the stream: each host's last step and the summary.
    for (const h of ['edge-1', 'edge-2', 'edge-3']) {
      assert.match(text, new RegExp(`${h}: changed \\(\\d+ of \\d+ steps\\)`));
    }
    assert.match(text, /\[edge-\d\] <== \d+\/\d+ ok/);
    assert.match(text, /health: https:\/\/127\.0\.1\.61:2379 healthy/);
    // The tree follows: the cluster healthy once the task is done.
    await page.getByRole('treeitem', { name: /^lab, 3\/3 healthy/ }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-task.png') });

    // Preview the plan now: rendered (tables, not pipes), read-only, every host in place; the
    // host's script one click away as a read-only shell document.
    await page.keyboard.press('F1');
    await input.waitFor({ timeout: 15_000 });
    await input.fill('>K3s etcd: Preview Provisioning Plan');
    const preview = page
      .locator('.quick-input-list .monaco-list-row')
      .filter({ has: page.locator('.label-name', { hasText: /Preview Provisioning Plan$/ }) })
      .first();
    await preview.waitFor({ timeout: 15_000 });
    await preview.click();
    await view
      .locator('h2', { hasText: `edge-3: unchanged (${steps} steps checked)` })
      .waitFor({ timeout: 60_000 })
      .catch(async (err: unknown) => {
        await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-preview-failed.png') });
        throw err;
      });
    await page
      .locator('.tabs-container .tab', { hasText: 'Preview lab-etcd-plan.md' })
      .waitFor({ timeout: 15_000 });
    const body = (await view.locator('body').innerText()).replace(/\u00a0/g, ' ');
    assert.match(body, /Provisioning plan: etcd for cluster lab/);
    assert.ok(body.includes(`edge-1: unchanged (${steps} steps checked)`), body);
    assert.ok(body.includes(`edge-2: unchanged (${steps} steps checked)`), body);
    assert.doesNotMatch(body, /\| \d+ \||<details>|\|---/, 'no Markdown source shows');
    assert.equal(await view.locator('table').count(), 3, 'one table per host');
    const keyRow = await cells('member key /etc/etcd/pki/server-key.pem (0600, etcd)');
    assert.match(keyRow[0] ?? '', /^\d+$/, 'its step number');
    assert.deepEqual(keyRow.slice(1), [
      'member key /etc/etcd/pki/server-key.pem (0600, etcd)',
      'unchanged',
    ]);
    // Nothing changes, so the health checks were asked, and they pass.
    assert.equal(
      (await cells('etcd answers healthy on https://127.0.1.63:2379'))[2],
      'check passes',
    );
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-preview.png') });

    // One click: edge-1's script, as a shell document that cannot be edited.
    await view.getByRole('link', { name: 'Open the script that runs on edge-1' }).click();
    const script = page.locator('.editor-instance .view-lines', { hasText: '#!/bin/sh' });
    await script.waitFor({ timeout: 30_000 });
    await page.locator('.tabs-container .tab.active', { hasText: 'edge-1.sh' }).waitFor();
    const scriptText = (await script.innerText()).replace(/\u00a0/g, ' ');
    assert.match(scriptText, /# k3s-etcd: etcd member edge-1 of cluster lab on edge-1/);
    await script.click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.type('x');
    await page
      .locator('.monaco-editor-overlaymessage', { hasText: /read-only/i })
      .waitFor({ timeout: 10_000 });
    assert.equal(
      (await script.innerText()).replace(/\u00a0/g, ' '),
      scriptText,
      'typing changes nothing',
    );
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'provision-preview-script.png') });

    const members = await listMembers(clientEndpoints(cluster), { tls: adminTls(cluster) });
    assert.deepEqual(members.map((m) => m.name).sort(), ['edge-1', 'edge-2', 'edge-3']);
    lab = { page, hosts, ws, file };
  },
);

test(
  'UI: right-click a moved member > Fix Peer URL after IP Change, confirm; all members healthy',
  { timeout: 180_000 },
  async () => {
    assert.ok(lab, 'the provisioning test above left no provisioned lab');
    const { page, hosts, ws, file } = lab;
    // edge-2 "moves": its sshd answers on a new address, which keeps its host key.
    await moveSshd(hosts[1]!, MOVED);
    await writeKnownHosts(ws, [
      ...(await Promise.all(hosts.map((h) => hostKeyLine(h)))),
      await hostKeyLine(hosts[1]!, MOVED),
    ]);

    // The tree: cluster > edge-2 > its etcd member, right-click.
    const clusterItem = page.getByRole('treeitem', { name: /^lab, / });
    if ((await clusterItem.getAttribute('aria-expanded')) !== 'true') await clusterItem.click();
    await page.getByRole('treeitem', { name: /^edge-2, / }).click();
    // "etcd member" before the first refresh, "etcd · <role> · <health>" after.
    const member = page.getByRole('treeitem', { name: /^etcd\b/ });
    await member.first().waitFor({ timeout: 15_000 });
    assert.equal(await member.count(), 1, "only edge-2's member is shown");
    const input = page.locator('.quick-input-widget input:visible');
    // Live health re-renders the tree: the right-click is retried until the input box is up.
    await runFromContextMenu(
      page,
      member,
      'Fix Peer URL after IP Change',
      input,
      'repair-right-click',
    );
    await input.fill(MOVED);
    await waitUntil(async () => (await input.inputValue()) === MOVED, 10_000, 'the address typed');
    await input.press('Enter');

    // The modal names the member ID and the new URL, with the steps.
    const confirm = page.getByRole('button', { name: 'Fix Peer URL' });
    await waitOrSay(page, confirm, 60_000, 'no confirmation', 'repair-failure.png');
    const dialog = (await page.locator('.monaco-dialog-box').innerText()).replace(/\u00a0/g, ' ');
    assert.match(
      dialog,
      new RegExp(`Update member [0-9a-f]+ to https://${MOVED.replace(/\./g, '\\.')}:2380\\?`),
    );
    assert.match(dialog, /re-issue edge-2's server and peer certificates/);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'repair-confirm.png') });
    await confirm.click();

    await waitRepaired(page, 'edge-2', MOVED);
    await page
      .getByRole('treeitem', { name: /^etcd · \w+ · healthy, / })
      .waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'repair-tree.png') });

    const after = await loadCluster(file);
    assert.equal(after.hosts[1]!.address, MOVED, 'the inventory names the new address');
    const members = await listMembers(clientEndpoints(after), { tls: adminTls(after) });
    assert.deepEqual(members.find((m) => m.name === 'edge-2')?.peerUrls, [`https://${MOVED}:2380`]);
  },
);

test(
  'UI: two members down, Recover Cluster…: the modal names the survivor with its raft index and what each other member’s data becomes; all members healthy after',
  { timeout: 240_000 },
  async () => {
    assert.ok(lab, 'the provisioning test above left no provisioned lab');
    const { page, hosts, file } = lab;
    // The quorum is lost: edge-2 and edge-3 stop; edge-3's data dir goes away (a lost disk).
    const cluster = await loadCluster(file);
    const data = cluster.etcd.dataDir;
    for (const h of hosts.slice(1)) assert.equal((await h.exec('systemctl stop etcd')).code, 0);
    assert.equal((await hosts[2]!.exec(`mv ${data} ${data}.lost`)).code, 0);

    await runFromPalette(page, 'K3s etcd: Recover Cluster…');
    const confirm = page.getByRole('button', { name: 'Recover', exact: true });
    await waitOrSay(page, confirm, 90_000, 'no confirmation', 'recover-failure.png');
    const dialog = (await page.locator('.monaco-dialog-box').innerText()).replace(/\u00a0/g, ' ');
    assert.match(
      dialog,
      /Survivor: edge-1 \(member edge-1, raft index \d+, term \d+, revision \d+\)/,
    );
    assert.match(
      dialog,
      /edge-2: its data \(.*\) is moved aside to .*\.recover-\d{8}T\d{6}Z \(kept, never deleted\)/,
    );
    assert.match(dialog, /edge-3: has no data dir \(nothing to keep\)/);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'recover-confirm.png') });
    await confirm.click();

    await page
      .locator('.notifications-toasts', { hasText: /lab recovered from edge-1/ })
      .waitFor({ timeout: 120_000 });
    await page.getByRole('treeitem', { name: /^lab, 3\/3 healthy/ }).waitFor({ timeout: 60_000 });
    const members = await listMembers(clientEndpoints(cluster), { tls: adminTls(cluster) });
    assert.deepEqual(members.map((m) => m.name).sort(), ['edge-1', 'edge-2', 'edge-3']);
    assert.ok(
      members.every((m) => !m.isLearner),
      'every member promoted',
    );
  },
);

test(
  'UI: a backup block and a key pair, Set Up Backups… (dry run, modal, apply), Run Backup Now; the Backups node says fresh',
  { timeout: 240_000 },
  async () => {
    assert.ok(lab, 'the provisioning test above left no provisioned lab');
    const { page, ws, file } = lab;
    // The person adds the block; the private key lives outside the workspace.
    const text = await readFile(file, 'utf8');
    await writeFile(
      file,
      text.replace(
        /^ {4}hosts:$/m,
        '    backup: { interval: 1h, encryption: { recipientsFile: backup-recipients.pem } }\n    hosts:',
      ),
    );
    const keys = await makeTempDir('k3s-etcd-ws-backup-keys-');
    cleanups.push(() => removeTempDir(keys));
    await writeBackupKeyPair({
      privateKeyFile: join(keys, 'backup.key'),
      recipientsFile: join(ws, 'backup-recipients.pem'),
      workspaceDir: ws,
    });
    await page
      .getByRole('treeitem', { name: /^Backups, not read yet/ })
      .waitFor({ timeout: 30_000 });

    // The task's own terminal: its dry run, then the modal that names the backup timer.
    await runFromPalette(page, 'K3s etcd: Set Up Backups…');
    await waitForTerminal(page, /Checking the backup timer/, 60_000);
    const modal = page.locator('.monaco-dialog-box', { hasText: /backup timer/ });
    await modal.waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'backup-setup-confirm.png') });
    await modal.getByRole('button', { name: 'Apply' }).click();
    await waitUntil(
      async () => {
        const r = await Promise.all(
          lab!.hosts.map((h) => h.exec('systemctl is-active -q k3s-etcd-backup.timer')),
        );
        return r.every((x) => x.code === 0);
      },
      120_000,
      'the backup timer running on every member host',
    );

    await runFromPalette(page, 'K3s etcd: Run Backup Now');
    await waitOrSay(
      page,
      page.locator('.notifications-toasts', {
        hasText: /lab: backup taken on edge-\d: saved lab-\d{8}T\d{6}Z\.db\.gz\.enc/,
      }),
      120_000,
      '"backup taken"',
      'backup-run-failure.png',
    );
    await page
      .getByRole('treeitem', { name: /^Backups, fresh · newest \d+ min ago/ })
      .waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(SCREENSHOTS_DIR, 'backup-fresh.png') });
  },
);
