/**
 * Editor tier, remote development for real: the VS Code server runs INSIDE the edge host edge-1
 * (nspawn: its own file system, systemd, machine id and host name; the non-root user `edge`,
 * whose sudo asks for a password every time), as a Remote-SSH server would, and headless
 * Chromium here is connected to it. The workspace, the SSH key and known_hosts are that user's,
 * on edge-1. "Provision etcd" for the three-host cluster then runs edge-1's steps in the task's
 * integrated terminal as root through sudo (the test types the password there, as a person
 * would), and edge-2 and edge-3 over SSH from edge-1; the tree ends 3/3 healthy. Then edge-1
 * "moves" to a new address with its sshd stopped (nothing can reach it over SSH), and "Fix Peer
 * URL after IP Change" on its member repairs it from that same window: its steps in a terminal
 * through sudo, the member update through edge-2; the tree ends 3/3 healthy at the new address.
 * In between, edge-1 is for a while a K3s server in the inventory, and "Preview K3s Plan" reads
 * it from that window as the provisioning preview does: here, as root through sudo, and the
 * preview says where the steps run.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { adminTls } from '../../src/core/etcd/connection';
import { listMembers } from '../../src/core/etcd/members';
import { clientEndpoints } from '../../src/core/inventory/select';
import { generateCertificateSet } from '../../src/core/pki/set';
import {
  DEFAULT_SUDO_USER,
  hostKeyLine,
  startEdgeHosts,
  stopEdgeHosts,
  type EdgeHost,
} from '../../scripts/harness/edgeHosts';
import { loadCluster, LAB_ETCD_BIN } from '../../scripts/harness/lab';
import { freePort } from '../../scripts/harness/net';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import {
  EXTENSION_ON_HOST,
  remoteVsCodeBinds,
  startVsCodeOnHost,
  type RemoteVsCode,
} from '../../scripts/harness/remoteVsCode';
import { makeKey } from '../../scripts/harness/sshd';
import {
  launchBrowser,
  REPO_ROOT,
  runFromContextMenu,
  runFromPalette,
  SCREENSHOTS_DIR,
  uiTestScope,
  waitForTerminal,
  waitRepaired,
} from './harness/vscode';

const DEV_EXTENSION = resolve(process.env['K3S_ETCD_DEV_EXTENSION'] ?? REPO_ROOT);
const ADDR = ['127.0.1.221', '127.0.1.222', '127.0.1.223'];
const MOVED = '127.0.1.229';
const USER = DEFAULT_SUDO_USER.name;
const HOME = `/home/${USER}`;
const WS = `${HOME}/lab`;
const cleanups = uiTestScope();

/** What the provisioning test leaves for the repair test. */
let lab: { page: Page; hosts: EdgeHost[]; server: RemoteVsCode } | undefined;

/** Types the sudo user's password into the terminal that has the focus. */
async function typeSudoPassword(page: Page): Promise<void> {
  await page
    .locator('.terminal-wrapper.active .xterm-helper-textarea, .xterm-helper-textarea')
    .first()
    .focus();
  await page.keyboard.type(`${DEFAULT_SUDO_USER.password}\n`);
}

/** Runs `body`; on failure, a screenshot named `shot` and the server's last log lines. */
async function diagnosed(
  page: Page,
  server: RemoteVsCode,
  shot: string,
  body: () => Promise<void>,
): Promise<void> {
  try {
    await body();
  } catch (err) {
    await page.screenshot({ path: join(SCREENSHOTS_DIR, shot) });
    throw new Error(`${String(err)}\n${await server.diagnostics(40)}`, { cause: err });
  }
}

/** The inventory as the person on edge-1 writes it: no key or known_hosts of its own. */
function inventory(): string {
  return [
    'version: 1',
    'clusters:',
    '  - name: lab',
    `    etcd: { version: v3.4.23, install: upload, uploadPath: ${LAB_ETCD_BIN} }`,
    '    hosts:',
    ...ADDR.map((a, i) => `      - { name: edge-${i + 1}, address: ${a}, roles: [etcd] }`),
    '',
  ].join('\n');
}

test(
  'UI: VS Code running on edge-1 provisions edge-1 in its own terminal through sudo, the others over SSH from it',
  { timeout: 420_000 },
  async () => {
    // Made here, then handed to edge-1's user: the key, the inventory, etcd and certificates.
    const ws = await makeTempDir('k3s-etcd-ws-remote-');
    cleanups.push(() => removeTempDir(ws));
    const key = makeKey(ws, 'id_ed25519');
    const hosts: EdgeHost[] = await startEdgeHosts({
      hosts: [
        { name: 'edge-1', address: ADDR[0]!, bindReadOnly: await remoteVsCodeBinds(DEV_EXTENSION) },
        { name: 'edge-2', address: ADDR[1]! },
        { name: 'edge-3', address: ADDR[2]! },
      ],
      authorizedKeys: [key.publicLine],
    });
    cleanups.push(() => stopEdgeHosts(hosts));
    const edge1 = hosts[0]!;
    const file = join(ws, 'k3s-etcd.yaml');
    await writeFile(file, inventory());
    await generateCertificateSet(await loadCluster(file));
    await mkdir(join(ws, LAB_ETCD_BIN));
    for (const b of ['etcd', 'etcdctl']) await cp(`/usr/bin/${b}`, join(ws, LAB_ETCD_BIN, b));
    const home = join(edge1.root, HOME.slice(1));
    await mkdir(join(home, '.ssh'), { recursive: true });
    await cp(key.file, join(home, '.ssh', 'id_ed25519'));
    await writeFile(
      join(home, '.ssh', 'known_hosts'),
      `${(await Promise.all(hosts.map((h) => hostKeyLine(h)))).join('\n')}\n`,
    );
    await cp(ws, join(home, 'lab'), { recursive: true });
    const own = await edge1.exec(
      `rm -f ${WS}/id_ed25519 ${WS}/id_ed25519.pub && chown -R ${USER}:${USER} ${HOME} && chmod 700 ${HOME}/.ssh && chmod 600 ${HOME}/.ssh/id_ed25519`,
    );
    assert.equal(own.code, 0, own.stderr);

    const server = await startVsCodeOnHost(edge1, {
      user: USER,
      port: await freePort(ADDR[0]),
      settings: {
        'terminal.integrated.gpuAcceleration': 'off',
        'k3sEtcd.health.refreshIntervalSeconds': 0,
      },
    });
    cleanups.push(() => server.stop());
    const browser = await launchBrowser({ loopback: [ADDR[0]!] });
    cleanups.push(() => browser.close());
    const page = await browser.newPage();
    await mkdir(SCREENSHOTS_DIR, { recursive: true });
    await diagnosed(page, server, 'remote-host-failed.png', async () => {
      await page.goto(
        server.workbenchUrl({
          folder: WS,
          payload: [
            ['extensionDevelopmentPath', server.remoteUri(EXTENSION_ON_HOST)],
            ['skipWelcome', 'true'],
          ],
        }),
        { waitUntil: 'domcontentloaded', timeout: 60_000 },
      );
      await page.getByRole('tab', { name: /^K3s etcd/ }).click({ timeout: 60_000 });
      await page.getByRole('treeitem', { name: /^lab, / }).waitFor({ timeout: 60_000 });

      await runFromPalette(page, 'K3s etcd: Provision etcd');
      // Where each host runs, then sudo's own prompt in this terminal.
      const placed = await waitForTerminal(page, /password for edge/, 90_000);
      assert.match(placed, /edge-1: here, in this window's terminal, as root through sudo/);
      assert.match(placed, /edge-2, edge-3: over SSH from edge-1/);
      assert.match(placed, /edge-1: this machine: the same machine id and host name edge-1/);
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'remote-host-sudo.png') });
      await typeSudoPassword(page);

      // After the dry run (edge-1 read as root here, the others over SSH), the modal asks, and
      // says where each host runs.
      const modal = page.locator('.monaco-dialog-box', {
        hasText: /edge-1: here, in this window's terminal/,
      });
      await modal.waitFor({ timeout: 180_000 });
      assert.match(await modal.innerText(), /edge-2, edge-3: over SSH from edge-1/);
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'remote-host-confirm.png') });
      const apply = modal.getByRole('button', { name: 'Apply' });
      await apply.click();
      const text = await waitForTerminal(page, /(Done|Failed): exit \d/, 240_000);
      assert.match(text, /Done: exit 0/, text);
      assert.doesNotMatch(text, new RegExp(DEFAULT_SUDO_USER.password), 'the password never shows');
      await page.getByRole('treeitem', { name: /^lab, 3\/3 healthy/ }).waitFor({ timeout: 60_000 });
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'remote-host-provision.png') });

      // The preview reads edge-1 as root too: a terminal of its own opens where sudo asks.
      await runFromPalette(page, 'K3s etcd: Preview Provisioning Plan');
      await waitForTerminal(
        page,
        /reads edge-1 as root: sudo asks here[\s\S]*password for edge/,
        90_000,
      );
      await typeSudoPassword(page);
      const view = page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
      await view.locator('h2', { hasText: /^edge-1: unchanged/ }).waitFor({ timeout: 90_000 });
      const body = (await view.locator('body').innerText()).replace(/\u00a0/g, ' ');
      assert.match(body, /Where the steps run/);
      assert.match(body, /edge-1: here, in this window's terminal, as root through sudo/);
      assert.match(body, /edge-2, edge-3: over SSH from edge-1/);
      assert.match(body, /edge-3: unchanged/);
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'remote-host-preview.png') });
    });

    // On edge-1 itself: sudo was asked by edge's own terminal (a pty), once per task, and etcd runs.
    const sudoLog = await edge1.exec(`journalctl _COMM=sudo --no-pager -o cat`);
    assert.match(
      sudoLog.stdout,
      /edge : TTY=pts\/\d+ ; PWD=[^;]+ ; USER=root ; COMMAND=(\/usr)?\/bin\/sh -c /,
    );
    for (const h of hosts) {
      const active = await h.exec('systemctl is-active etcd');
      assert.equal(active.stdout.trim(), 'active', `${h.name}: ${active.stdout}`);
    }
    lab = { page, hosts, server };
  },
);

test(
  'UI: Preview K3s Plan from the window on edge-1 reads edge-1 there through sudo and says where the steps run',
  { timeout: 240_000 },
  async () => {
    assert.ok(lab, 'the provisioning test above left no provisioned lab');
    const { page, hosts, server } = lab;
    const edge1 = hosts[0]!;
    // edge-1 becomes a K3s server of the cluster (for this test only: the repair test after it
    // re-points K3s servers, and edge-1 has none).
    const file = join(edge1.root, WS.slice(1), 'k3s-etcd.yaml');
    const text = await readFile(file, 'utf8');
    const edited = text.replace(/(name: edge-1,[^\n]*roles: \[)etcd\]/, '$1etcd, k3s-server]');
    assert.notEqual(edited, text, `edge-1's roles in:\n${text}`);
    await writeFile(file, edited);
    try {
      await diagnosed(page, server, 'remote-k3s-preview-failed.png', async () => {
        // The inventory is read again: edge-1's row shows its new role.
        for (const name of [/^lab, /, /^edge-1, /]) {
          const item = page.getByRole('treeitem', { name }).first();
          await item.waitFor({ timeout: 60_000 });
          if ((await item.getAttribute('aria-expanded')) !== 'true') await item.click();
        }
        await page
          .getByRole('treeitem', { name: /^K3s server\b/ })
          .first()
          .waitFor({ timeout: 60_000 });
        // Only this preview's document and terminal, so what is read below is its own.
        await runFromPalette(page, 'View: Close All Editors');
        await runFromPalette(page, 'Terminal: Kill All Terminals');
        await page.locator('.xterm-rows').first().waitFor({ state: 'detached', timeout: 15_000 });
        await runFromPalette(page, 'K3s etcd: Preview K3s Plan');
        await waitForTerminal(
          page,
          /reads edge-1 as root: sudo asks here[\s\S]*password for edge/,
          90_000,
        );
        await typeSudoPassword(page);
        const view = page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
        await view
          .locator('h1', { hasText: /K3s on the external etcd: plan for cluster lab/ })
          .waitFor({ timeout: 90_000 });
        // edge-1's dry run went through (read as root here): its steps, not an error.
        await view
          .locator('h2', { hasText: /^edge-1: [\w-]+ \(\d+ (of \d+ )?steps/ })
          .waitFor({ timeout: 90_000 });
        const body = (await view.locator('body').innerText()).replace(/\u00a0/g, ' ');
        assert.match(body, /Where the steps run/);
        assert.match(body, /edge-1: here, in this window's terminal, as root through sudo/);
        await page.screenshot({ path: join(SCREENSHOTS_DIR, 'remote-k3s-preview.png') });
      });
    } finally {
      // Back to what the repair test expects, whatever happened: edge-1 an etcd member only,
      // its row collapsed.
      await writeFile(file, text);
      const gone = page.getByRole('treeitem', { name: /^K3s server\b/ });
      await gone.waitFor({ state: 'detached', timeout: 60_000 }).catch(() => undefined);
      const row = page.getByRole('treeitem', { name: /^edge-1, / }).first();
      if ((await row.getAttribute('aria-expanded').catch(() => null)) === 'true') await row.click();
    }
    await page
      .getByRole('treeitem', { name: /^K3s server\b/ })
      .waitFor({ state: 'detached', timeout: 1000 });
  },
);

test(
  "UI: edge-1's address changed and its sshd is down: Fix Peer URL from the window running on edge-1 repairs it there through sudo",
  { timeout: 240_000 },
  async () => {
    assert.ok(lab, 'the provisioning test above left no provisioned lab');
    const { page, hosts, server } = lab;
    const edge1 = hosts[0]!;
    // edge-1 "moves"; its sshd is stopped, so any step that went over SSH to it would fail.
    const stop = await edge1.exec('systemctl stop ssh.socket ssh.service; systemctl is-active ssh');
    assert.notEqual(stop.stdout.trim(), 'active', 'sshd of edge-1 still runs');
    const sudoBefore = (await edge1.exec('journalctl _COMM=sudo --no-pager -o cat')).stdout;

    await diagnosed(page, server, 'remote-repair-failed.png', async () => {
      const clusterItem = page.getByRole('treeitem', { name: /^lab, / });
      if ((await clusterItem.getAttribute('aria-expanded')) !== 'true') await clusterItem.click();
      await page.getByRole('treeitem', { name: /^edge-1, / }).click();
      const member = page.getByRole('treeitem', { name: /^etcd\b/ });
      await member.first().waitFor({ timeout: 15_000 });
      const input = page.locator('.quick-input-widget input:visible');
      await runFromContextMenu(
        page,
        member,
        'Fix Peer URL after IP Change',
        input,
        'remote-repair-right-click',
      );
      await input.fill(MOVED);
      await input.press('Enter');

      // Reading edge-1's env file needs root: sudo asks in a terminal of the repair's own.
      await waitForTerminal(
        page,
        /reads edge-1 as root: sudo asks here[\s\S]*password for edge/,
        90_000,
      );
      await typeSudoPassword(page);
      const modal = page.locator('.monaco-dialog-box', {
        hasText: new RegExp(
          `Update member [0-9a-f]+ to https://${MOVED.replace(/\./g, '\\.')}:2380`,
        ),
      });
      await modal.waitFor({ timeout: 90_000 });
      const said = (await modal.innerText()).replace(/\u00a0/g, ' ');
      assert.match(said, /on edge-1 \(here, as root through sudo in this window's terminal\)/);
      assert.doesNotMatch(said, /SSH tunnel/);
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'remote-repair-confirm.png') });
      await modal.getByRole('button', { name: 'Fix Peer URL' }).click();

      await waitRepaired(page, 'edge-1', MOVED, 120_000);
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'remote-repair-tree.png') });
    });

    // What a person would check on edge-1: the inventory, the member list, sudo's journal.
    const after = await loadCluster(join(edge1.root, WS.slice(1), 'k3s-etcd.yaml'));
    assert.equal(after.hosts[0]!.address, MOVED, 'the inventory on edge-1 names the new address');
    const members = await listMembers(clientEndpoints(after).slice(1), { tls: adminTls(after) });
    assert.deepEqual(members.find((m) => m.name === 'edge-1')?.peerUrls, [`https://${MOVED}:2380`]);
    const sudoAfter = (await edge1.exec('journalctl _COMM=sudo --no-pager -o cat')).stdout;
    assert.match(
      sudoAfter.slice(sudoBefore.length),
      /edge : TTY=pts\/\d+ ; PWD=[^;]+ ; USER=root ; COMMAND=(\/usr)?\/bin\/sh -c /,
      'the repair became root through sudo in a terminal on edge-1',
    );
    const active = await edge1.exec('systemctl is-active ssh');
    assert.notEqual(active.stdout.trim(), 'active', 'sshd of edge-1 stayed down throughout');
  },
);
