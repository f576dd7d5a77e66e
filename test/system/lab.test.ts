/**
 * The lab (`npm run lab`, scripts/lab.ts) end to end, as a person uses it: it comes up and
 * returns with the URL printed (carrying VS Code's connection token: without it the server refuses
 * every request, since its terminal is a root shell); the three hosts answer the real OpenSSH client with the lab's key
 * and the workspace's known_hosts; a second `lab` says it is already running; the real VS Code
 * page loads with the installed extension active and the `lab` cluster and its hosts in the
 * tree (screenshot test-results/screenshots/lab.png); `--down` leaves no process running, frees
 * the ports and keeps the workspace. Plus the refusal on machines that cannot run it, and
 * `--remote edge-1`: VS Code inside that host as its user, the window showing the lab's tree.
 *
 * Own addresses (127.0.1.14-16), a temp state dir and a free port: never a user's running lab.
 * Uses the VSIX in the repo (`--no-build`: `npm run test:all` packages it before the tests).
 * Run: node --import tsx --test test/system/lab.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { labPreflight, refusalText } from '../../scripts/lab/preflight.mjs';
import { alive, processesInGroup, readState, type LabState } from '../../scripts/lab/state';
import { freePort, launchBrowser, REPO_ROOT, SCREENSHOTS_DIR } from '../editor/harness/vscode';
import { httpStatus } from '../../scripts/harness/net';
import type { Browser } from '../editor/harness/vscode';
import { loadCluster } from '../../scripts/harness/lab';
import { findFiles } from '../../scripts/harness/files';
import {
  makeTempDir,
  processesWithArg,
  removeTempDir,
  waitUntil,
} from '../../scripts/harness/processes';
import { realSsh } from '../../scripts/harness/sshd';

const ADDRESSES = ['127.0.1.14', '127.0.1.15', '127.0.1.16'];
const VERSION = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    version: string;
  }
).version;
const VSIX = `k3s-etcd-${VERSION}.vsix`;
const EXT_ID = 'k3s-etcd.k3s-etcd';

describe('lab preflight: why a machine cannot run the lab', () => {
  const ok = { platform: 'linux', uid: 0, hasNspawn: true, canInstallNspawn: false };

  it('Linux, root and systemd-nspawn (or apt-get to install it): no reason', () => {
    assert.deepEqual(labPreflight(ok), []);
    assert.deepEqual(labPreflight({ ...ok, hasNspawn: false, canInstallNspawn: true }), []);
  });

  it('names each missing condition exactly', () => {
    assert.deepEqual(labPreflight({ ...ok, platform: 'darwin', uid: 501 }), [
      'it needs Linux: its edge hosts are Debian containers booted with systemd-nspawn, and this machine runs macOS.',
    ]);
    assert.match(
      labPreflight({ ...ok, platform: 'win32', uid: undefined })[0] ?? '',
      /runs Windows\.$/,
    );
    const notRoot = labPreflight({ ...ok, uid: 1000 });
    assert.equal(notRoot.length, 1);
    assert.match(notRoot[0] ?? '', /^it needs root: .* you are uid 1000\. Run it as root/);
    assert.deepEqual(labPreflight({ ...ok, hasNspawn: false }), [
      "systemd-nspawn is not installed, and there is no apt-get here to install it (it is Debian's package systemd-container).",
    ]);
    assert.equal(labPreflight({ ...ok, uid: 1000, hasNspawn: false }).length, 2);
  });

  it('the refusal says how to use the extension with real hosts instead', () => {
    const text = refusalText(['it needs root: you are uid 1000.'], { vsix: VSIX });
    assert.match(
      text,
      /^The lab cannot run on this machine:\n {2}- it needs root: you are uid 1000\.\n/,
    );
    for (const needle of [
      'Use the extension with real hosts instead:',
      'npm ci && npm run package',
      `code --install-extension ${VSIX}`,
      'k3s-etcd.yaml naming your hosts',
      'SSH user and identityFile',
      'npm run dev:web',
    ]) {
      assert.ok(text.includes(needle), `refusal lacks "${needle}":\n${text}`);
    }
  });

  it("as a non-root user, npm run lab's entry refuses with exit 2 before installing anything", async () => {
    // The entry and what it reads, copied where that user can read them: a checkout may sit
    // under a folder only root can enter (mktemp -d makes them 0700).
    const copy = await makeTempDir('k3s-etcd-lab-entry-');
    try {
      await mkdir(join(copy, 'scripts', 'lab'), { recursive: true });
      for (const f of ['package.json', 'scripts/lab/launch.mjs', 'scripts/lab/preflight.mjs'])
        await copyFile(join(REPO_ROOT, f), join(copy, f));
      await chmodTree(copy);
      refusesAsNobody(join(copy, 'scripts', 'lab', 'launch.mjs'));
    } finally {
      await removeTempDir(copy);
    }
  });
});

/** Everyone may read `dir`'s files and enter its folders. */
async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chmodTree(p);
    else await chmod(p, 0o644);
  }
}

function refusesAsNobody(entry: string): void {
  const r = spawnSync(process.execPath, [entry], {
    uid: 65534,
    gid: 65534,
    cwd: '/',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^The lab cannot run on this machine:\n {2}- it needs root: .*uid 65534/);
  assert.ok(r.stderr.includes(`code --install-extension ${VSIX}`), r.stderr);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `npm run lab -- ARGS` to its end (the lab itself stays in the background). */
function lab(args: string[], timeoutMs = 300_000): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', '--silent', 'lab', '--', ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** How a TCP connection to host:port ends: 'connected', or the error code (ECONNREFUSED...). */
function connectOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, 3_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? e.message);
    });
  });
}

/** On failure too: nothing of the lab may outlive the test (browser, hosts, keeper, folder). */
async function tearDownLab(stateDir: string, browser: Browser | undefined): Promise<void> {
  await browser?.close().catch(() => undefined);
  if (stateDir && existsSync(join(stateDir, 'lab.json'))) {
    const r = await lab(['--down', '--state', stateDir]);
    if (r.code !== 0) console.error(`cleanup --down: ${r.stdout}${r.stderr}`);
    const left = readState(stateDir);
    if (left && alive(left.keeper)) process.kill(left.keeper.pid, 'SIGTERM');
  }
  if (stateDir) await removeTempDir(stateDir);
}

describe('npm run lab: three edge hosts and the real VS Code, up and down', () => {
  let stateDir = '';
  let port = 0;
  let workspace = '';
  let url = '';
  let state: LabState | undefined;
  let browser: Browser | undefined;

  before(async () => {
    assert.ok(
      existsSync(join(REPO_ROOT, VSIX)),
      `${VSIX} is missing: run \`npm run package\` first (npm run test:all does)`,
    );
    stateDir = await makeTempDir('k3s-etcd-lab-');
    workspace = join(stateDir, 'workspace');
    port = await freePort();
  });

  after(() => tearDownLab(stateDir, browser));

  /** `npm run lab` as the test runs it: this test's state dir, port and addresses, no build. */
  const upArgs = () => [
    '--no-build',
    '--no-browser',
    '--state',
    stateDir,
    '--port',
    String(port),
    '--addresses',
    ADDRESSES.join(','),
  ];

  it('comes up, prints the URL and what to try, and returns', { timeout: 300_000 }, async () => {
    const r = await lab(upArgs());
    assert.equal(r.code, 0, `lab failed:\n${r.stdout}\n${r.stderr}`);
    console.log(`lab up and returned in ${r.ms} ms`);
    url = /^ {2}Open {8}(\S+)$/m.exec(r.stdout)?.[1] ?? '';
    const token = readFileSync(join(stateDir, 'connection-token'), 'utf8').trim();
    assert.match(token, /^[\w-]{43}$/, 'a random 256-bit token');
    assert.equal(url, `http://127.0.0.1:${port}/?tkn=${token}&folder=${workspace}`, r.stdout);
    for (const needle of [
      'What to try first:',
      'Generate Certificate Set',
      'Preview Provisioning Plan',
      'Provision etcd',
      'Open etcd Health',
      'Move K3s from SQLite to etcd',
      'npm run lab -- --down',
      `ssh -i ${join(workspace, 'id_lab_ed25519')} -o UserKnownHostsFile=${join(workspace, 'known_hosts')} root@${ADDRESSES[0]}`,
    ]) {
      assert.ok(r.stdout.includes(needle), `the output lacks "${needle}":\n${r.stdout}`);
    }
    state = readState(stateDir);
    assert.ok(state, 'no lab.json');
    assert.equal(state.status, 'running');
    assert.equal(state.url, url);
    assert.deepEqual(
      state.hosts.map((h) => [h.name, h.address]),
      ADDRESSES.map((a, i) => [`edge-${i + 1}`, a]),
    );
    assert.ok(alive(state.keeper) && alive(state.vscode), 'keeper and VS Code run on');
    console.log(`keeper: hosts and VS Code up in ${state.upMs} ms`);
  });

  it('VS Code refuses every request without the connection token, and only root can read it', async () => {
    assert.ok(state, 'the lab is not up');
    const base = `http://127.0.0.1:${port}`;
    const token = new URL(url).searchParams.get('tkn') ?? '';
    // No token, a wrong one: refused, the workbench, its folder URL and a resource alike.
    for (const path of [
      '/',
      `/?folder=${workspace}`,
      `/?tkn=${'x'.repeat(43)}&folder=${workspace}`,
      `/vscode-remote-resource?path=${join(workspace, 'k3s-etcd.yaml')}`,
    ]) {
      assert.equal(await httpStatus(`${base}${path}`, 5_000), 403, path);
    }
    // With it: a redirect to the workbench that keeps the token in a cookie, then the workbench.
    assert.equal(await httpStatus(url, 5_000), 302);
    const page = await fetch(`${base}/`, { headers: { cookie: `vscode-tkn=${token}` } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    // The token, and every file that holds the URL, are root's alone.
    assert.equal(statSync(stateDir).mode & 0o777, 0o700, 'state dir');
    for (const f of ['connection-token', 'lab.json', 'keeper.json', 'lab.log', 'vscode.log'])
      assert.equal(statSync(join(stateDir, f)).mode & 0o777, 0o600, f);
  });

  it('each host answers on SSH with the lab key and the workspace known_hosts', async () => {
    assert.ok(state, 'the lab is not up');
    const key = join(workspace, 'id_lab_ed25519');
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const knownHostsFile = join(workspace, 'known_hosts');
    for (const [i, address] of ADDRESSES.entries()) {
      const r = await realSsh({
        key,
        knownHostsFile,
        target: `root@${address}`,
        command: 'hostname; systemctl is-system-running',
      });
      assert.equal(r.code, 0, `ssh root@${address}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^edge-${i + 1}\\n(running|degraded)\\n$`));
    }
    // The host keys really are checked: without the workspace's known_hosts ssh refuses.
    const strict = await realSsh({
      key,
      knownHostsFile: '/dev/null',
      target: `root@${ADDRESSES[0]}`,
      command: 'true',
    });
    assert.equal(strict.code, 255);
    assert.match(strict.stderr, /Host key verification failed/);
    // The workspace's inventory names the three hosts with that key and known_hosts.
    const cluster = await loadCluster(join(workspace, 'k3s-etcd.yaml'));
    assert.equal(cluster.name, 'lab');
    assert.deepEqual(
      cluster.hosts.map((h) => [h.name, h.address]),
      ADDRESSES.map((a, i) => [`edge-${i + 1}`, a]),
    );
    assert.ok(existsSync(join(workspace, 'etcd-bin', 'etcd')), 'etcd staged for the upload');
  });

  it('a second lab says it is already running and prints the same URL', async () => {
    assert.ok(state, 'the lab is not up');
    const r = await lab(upArgs());
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.ok(r.stdout.startsWith(`The lab is already running: ${url}\n`), r.stdout);
    const again = readState(stateDir);
    assert.deepEqual(again?.keeper, state.keeper, 'nothing was restarted');
    console.log(`second lab answered in ${r.ms} ms`);
  });

  it(
    'the VS Code page loads with the extension active and the lab cluster in the tree',
    { timeout: 240_000 },
    async () => {
      assert.ok(state, 'the lab is not up');
      const b = await launchBrowser();
      browser = b;
      const page: Page = await b.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await page.getByRole('tab', { name: /^K3s etcd/ }).click({ timeout: 60_000 });
      await page.mouse.move(700, 450); // no hover tooltip in the picture
      const cluster = page.getByRole('treeitem', { name: /^lab\b/ });
      await cluster.waitFor({ timeout: 60_000 });
      if ((await cluster.getAttribute('aria-expanded')) !== 'true') await cluster.click();
      for (const h of ['edge-1', 'edge-2', 'edge-3']) {
        await page
          .getByRole('treeitem', { name: new RegExp(`^${h}\\b`) })
          .waitFor({ timeout: 30_000 });
      }
      // The installed VSIX (the lab has no development copy) activated, and did not fail.
      const logs = () =>
        findFiles(join(stateDir, 'user', 'logs'), (n) => /^(remote)?exthost\.log$/.test(n))
          .map((f) => readFileSync(f, 'utf8'))
          .join('\n');
      await waitUntil(
        async () =>
          new RegExp(`_doActivateExtension ${EXT_ID.replace('.', '\\.')}\\b`).test(logs()),
        30_000,
        `the extension host log shows ${EXT_ID} activating`,
      );
      assert.doesNotMatch(logs(), new RegExp(`Activating extension '?${EXT_ID}'? failed`, 'i'));
      const installed = readdirSync(join(stateDir, 'server', 'extensions'));
      assert.ok(installed.includes(`${EXT_ID}-${VERSION}`), installed.join(', '));
      await mkdir(SCREENSHOTS_DIR, { recursive: true });
      const shot = join(SCREENSHOTS_DIR, 'lab.png');
      await page.screenshot({ path: shot });
      console.log(`screenshot: ${shot}`);
      assert.deepEqual(errors, []);
      await b.close();
      browser = undefined;
    },
  );

  it(
    '--down stops everything, frees the ports and keeps the workspace',
    { timeout: 180_000 },
    async () => {
      assert.ok(state, 'the lab is not up');
      const r = await lab(['--down', '--state', stateDir]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /The lab is down/);
      console.log(`lab --down in ${r.ms} ms`);
      assert.equal(existsSync(join(stateDir, 'lab.json')), false, 'lab.json removed');

      // No process of the lab is alive.
      assert.equal(alive(state.keeper), false, 'keeper');
      assert.equal(alive(state.vscode), false, 'VS Code');
      assert.deepEqual(processesInGroup(state.vscode?.pid ?? 0), [], "VS Code's process group");
      for (const h of state.hosts) {
        assert.equal(alive(h.nspawn), false, `${h.name} nspawn`);
        assert.equal(alive(h.leader), false, `${h.name} systemd`);
        assert.deepEqual(processesWithArg(h.machine), [], `${h.name} processes`);
        assert.equal(existsSync(h.dir), false, `${h.name} dir ${h.dir}`);
        for (const c of h.cgroups) assert.equal(existsSync(c), false, `cgroup ${c}`);
      }
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
      for (const h of state.hosts) assert.ok(!mounts.includes(h.dir), `${h.dir} still mounted`);
      // machinectl lists no lab machine (the hosts never register; where machinectl cannot
      // reach systemd, as on machines without systemd as PID 1, the process table above is it).
      const mc = spawnSync('machinectl', ['list', '--no-legend'], { encoding: 'utf8' });
      if (mc.status === 0) {
        for (const h of state.hosts) assert.ok(!mc.stdout.includes(h.machine), mc.stdout);
      }

      // The ports refuse connections.
      assert.equal(await connectOutcome('127.0.0.1', port), 'ECONNREFUSED');
      for (const a of ADDRESSES) {
        for (const p of [22, 2379, 2380])
          assert.equal(await connectOutcome(a, p), 'ECONNREFUSED', `${a}:${p}`);
      }

      // The workspace stays.
      for (const f of ['k3s-etcd.yaml', 'id_lab_ed25519', 'known_hosts', 'etcd-bin/etcd']) {
        assert.ok(existsSync(join(workspace, f)), `${f} is gone`);
      }
      // A second --down has nothing to do.
      const again = await lab(['--down', '--state', stateDir]);
      assert.equal(again.code, 0);
      assert.match(again.stdout, /nothing to stop/);
    },
  );
});

describe('npm run lab -- --remote edge-1: VS Code runs on the edge host, as Remote-SSH runs it', () => {
  const addresses = ['127.0.1.17', '127.0.1.18', '127.0.1.19'];
  let stateDir = '';
  let browser: Browser | undefined;

  after(() => tearDownLab(stateDir, browser));

  it(
    "prints the URL of VS Code on edge-1 (as its user edge, the workspace there), whose window shows the lab's tree; --down ends it",
    { timeout: 300_000 },
    async () => {
      assert.ok(existsSync(join(REPO_ROOT, VSIX)), `${VSIX} is missing: run npm run package`);
      stateDir = await makeTempDir('k3s-etcd-lab-remote-');
      const port = await freePort(addresses[0]);
      const r = await lab([
        ...['--no-build', '--no-browser', '--remote', 'edge-1', '--state', stateDir],
        ...['--port', String(port), '--addresses', addresses.join(',')],
      ]);
      assert.equal(r.code, 0, `lab failed:\n${r.stdout}\n${r.stderr}`);
      const url = /^ {2}Open {8}(\S+)$/m.exec(r.stdout)?.[1] ?? '';
      assert.match(
        url,
        new RegExp(
          `^http://127\\.0\\.1\\.17:${port}/\\?tkn=[\\w-]{43}&folder=%2Fhome%2Fedge%2Flab$`,
        ),
        r.stdout,
      );
      assert.match(r.stdout, /VS Code runs ON edge-1, as edge, in \/home\/edge\/lab/);
      assert.equal(await httpStatus(url, 5_000), 302);
      assert.equal(await httpStatus(`http://127.0.1.17:${port}/`, 5_000), 403, 'no token');
      const state = readState(stateDir);
      assert.ok(state?.remote && alive(state.keeper), 'the keeper runs on');
      // The server is edge's, inside edge-1, with the VSIX installed there.
      const inside = spawnSync(
        'nsenter',
        [
          '-t',
          String(state.hosts[0]?.leader.pid),
          '-a',
          'sh',
          '-c',
          'ps -o user=,args= -u edge; ls ~edge/.k3s-etcd-vscode/extensions',
        ],
        { encoding: 'utf8' },
      );
      assert.match(
        inside.stdout,
        /^edge +\/opt\/k3s-etcd\/node \/opt\/k3s-etcd\/vscode\/out\/server-main\.js /m,
      );
      assert.match(inside.stdout, new RegExp(`^${EXT_ID.replace('.', '\\.')}-${VERSION}$`, 'm'));

      browser = await launchBrowser({ loopback: [addresses[0]!] });
      const page = await browser.newPage();
      await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
      await page.getByRole('tab', { name: /^K3s etcd/ }).click({ timeout: 60_000 });
      await page.getByRole('treeitem', { name: /^lab, / }).waitFor({ timeout: 60_000 });
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'lab-remote.png') });
      await browser.close();
      browser = undefined;

      const down = await lab(['--down', '--state', stateDir]);
      assert.equal(down.code, 0, `${down.stdout}${down.stderr}`);
      assert.match(down.stdout, /the hosts powered off and removed/);
      assert.equal(alive(state.keeper), false, 'the keeper is gone');
      assert.equal(await connectOutcome(addresses[0]!, port), 'ECONNREFUSED');
    },
  );
});
