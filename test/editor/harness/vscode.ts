/**
 * Editor-test harness: the REAL VS Code 1.100.3 server that ships inside the code-server npm
 * package (prepared offline by scripts/setup-vscode.sh), driven by headless Debian Chromium
 * through playwright-core.
 *
 * - `ensureVsCode()` prepares (or finds) the VS Code build; it throws, never skips.
 * - `startVsCodeServer()` starts `out/server-main.js` on 127.0.0.1 and a free port, with temp
 *   server-data and user-data dirs and a connection token in a 0600 file (the server refuses
 *   requests without it; `workbenchUrl()` carries it), and waits for HTTP readiness against a
 *   deadline.
 * - `installVsix()` installs a VSIX into a server-data dir with `--install-extension`.
 * - `launchBrowser()` starts Chromium with a fresh profile.
 * - `runExtensionHostTests()` opens a workbench whose payload names an extension under
 *   development and an in-host test module, and waits for the results file that module writes.
 *
 * Everything is torn down by `stop()`/`close()` (process groups are killed, temp dirs removed),
 * and one process-level exit/SIGINT/SIGTERM hook SIGKILLs whatever a crashed test left behind.
 * Server output and VS Code's own logs are kept under test-results/logs/ for debugging.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, cpSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { ensureConnectionTokenFile, withToken } from '../../../scripts/lab/connectionToken.mjs';
import { findFiles } from '../../support/files';
import { freePort, httpStatus } from '../../support/net';
import type { BrowserContext, Page } from 'playwright-core';
import {
  groupAlive,
  killGroup,
  makeTempDir,
  removeTempDir,
  sleep,
  trackGroup,
  untrackGroup,
} from '../../support/processes';

export const REPO_ROOT = resolve(__dirname, '..', '..', '..');
export const RESULTS_DIR = join(REPO_ROOT, 'test-results');
export const LOGS_DIR = join(RESULTS_DIR, 'logs');
export const SCREENSHOTS_DIR = join(RESULTS_DIR, 'screenshots');
/** Env var naming the JSON results file an in-host suite writes. */
export const RESULTS_ENV = 'K3S_ETCD_TEST_RESULTS';
/** Prefix of the console line an in-host suite also prints with the same JSON (fallback channel). */
export const RESULTS_CONSOLE_PREFIX = 'K3S_ETCD_TEST_RESULTS_JSON:';
const CHROMIUM = '/usr/bin/chromium';

// Process groups and temp dirs of this test process are tracked by test/support/processes.ts.
export { freePort, makeTempDir, removeTempDir };

/** SIGTERM the whole group (server, extension hosts, pty host), then SIGKILL after `graceMs`. */
async function stopGroup(child: ChildProcess, graceMs = 5_000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const waitGone = async (ms: number): Promise<boolean> => {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
      if (!groupAlive(pid)) return true;
    }
    return !groupAlive(pid);
  };
  if (groupAlive(pid)) {
    killGroup(pid, 'SIGTERM');
    if (!(await waitGone(graceMs))) {
      killGroup(pid, 'SIGKILL');
      await waitGone(5_000);
    }
  }
  untrackGroup(pid);
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
function readTail(file: string, lines = 60): string {
  try {
    return tail(readFileSync(file, 'utf8'), lines);
  } catch {
    return `(no log at ${file})`;
  }
}

// ---- VS Code itself -------------------------------------------------------------------------
let vscodeDir: string | undefined;

/** Runs scripts/setup-vscode.sh (instant once cached) and returns the VS Code directory. */
export async function ensureVsCode(): Promise<string> {
  if (vscodeDir !== undefined) return vscodeDir;
  const script = join(REPO_ROOT, 'scripts', 'setup-vscode.sh');
  const { stdout, stderr, code } = await new Promise<{
    stdout: string;
    stderr: string;
    code: number;
  }>((res) => {
    execFile(
      'bash',
      [script],
      { maxBuffer: 64 * 1024 * 1024, timeout: 30 * 60_000 },
      (err, out, errOut) => {
        const c = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        res({ stdout: out, stderr: errOut, code: c });
      },
    );
  });
  const dir = stdout.trimEnd().split('\n').pop()?.trim() ?? '';
  if (code !== 0 || dir === '' || !existsSync(join(dir, 'out', 'server-main.js'))) {
    throw new Error(
      `scripts/setup-vscode.sh failed (exit ${code}); the editor tests need the real VS Code server.\n` +
        `Run scripts/install-system-deps.sh, then bash scripts/setup-vscode.sh.\n` +
        `stdout tail:\n${tail(stdout, 10)}\nstderr tail:\n${tail(stderr, 30)}`,
    );
  }
  vscodeDir = dir;
  return dir;
}

export interface ServerOptions {
  /**
   * Default false: writes "security.workspace.trust.enabled": false into the user settings (every
   * folder is trusted). True: trust is on and folders open in Restricted Mode without asking
   * ("security.workspace.trust.startupPrompt": "never"), until trusted in the workbench.
   */
  workspaceTrust?: boolean;
  /** Extra user settings (User/settings.json under the user-data dir). */
  settings?: Record<string, unknown>;
  /** Extra environment for the server; extension hosts inherit it. */
  env?: Record<string, string>;
  /** Use this server-data dir (e.g. one `installVsix` filled); the caller owns and removes it. */
  serverDataDir?: string;
  /** Passed as --extensions-dir; default is <server-data-dir>/extensions. */
  extensionsDir?: string;
  /** Short name for the log files under test-results/logs/. */
  name?: string;
  readyTimeoutMs?: number;
}

export interface VsCodeServer {
  readonly port: number;
  /** `127.0.0.1:PORT`, the remote authority of every `vscode-remote://` URI. */
  readonly authority: string;
  /** `http://127.0.0.1:PORT`: refused (403) without the connection token. */
  readonly baseUrl: string;
  /** The server's connection token, and the 0600 file it was given in. */
  readonly connectionToken: string;
  readonly connectionTokenFile: string;
  readonly serverDataDir: string;
  readonly userDataDir: string;
  readonly extensionsDir: string;
  /** The results file in-host suites write (its path is in the server's env as K3S_ETCD_TEST_RESULTS). */
  readonly resultsFile: string;
  /** Server stdout+stderr, kept under test-results/logs/. */
  readonly logFile: string;
  readonly pid: number;
  /** `vscode-remote://127.0.0.1:PORT/abs/path` */
  remoteUri(absPath: string): string;
  /** `http://127.0.0.1:PORT/?tkn=...&folder=...&payload=...` */
  workbenchUrl(opts: { folder?: string; payload?: Array<[string, string]> }): string;
  /** Server stdout/stderr plus the remote extension-host logs (tail of each). */
  diagnostics(lines?: number): string;
  /** Text of the remote extension host's log(s) so far. */
  extensionHostLog(): string;
  stop(): Promise<void>;
}

export async function startVsCodeServer(opts: ServerOptions = {}): Promise<VsCodeServer> {
  const vscode = await ensureVsCode();
  const name = opts.name ?? 'vscode';
  const tmp = await makeTempDir('k3s-etcd-vscode-');
  const serverDataDir = opts.serverDataDir ?? join(tmp, 'server-data');
  const userDataDir = join(tmp, 'user-data');
  const extensionsDir = opts.extensionsDir ?? join(serverDataDir, 'extensions');
  const resultsFile = join(tmp, 'results.json');
  await mkdir(join(userDataDir, 'User'), { recursive: true });
  await mkdir(extensionsDir, { recursive: true });
  const settings: Record<string, unknown> = {
    'security.workspace.trust.enabled': opts.workspaceTrust ?? false,
    ...(opts.workspaceTrust ? { 'security.workspace.trust.startupPrompt': 'never' } : {}),
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'extensions.ignoreRecommendations': true,
    ...opts.settings,
  };
  await writeFile(join(userDataDir, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  await mkdir(LOGS_DIR, { recursive: true });
  const connectionTokenFile = join(tmp, 'connection-token');
  const connectionToken = ensureConnectionTokenFile(connectionTokenFile);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // No extension gallery: nothing may try to reach the marketplace from a test.
    EXTENSIONS_GALLERY: '{}',
    [RESULTS_ENV]: resultsFile,
    ...opts.env,
  };
  // A VS Code that thinks it is itself under test or in a terminal of another VS Code misbehaves.
  for (const k of Object.keys(env)) if (/^(VSCODE_|ELECTRON_RUN_AS_NODE$)/.test(k)) delete env[k];

  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  let lastError = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const authority = `127.0.0.1:${port}`;
    const logFile = join(LOGS_DIR, `${name}-server-${port}.log`);
    const args = [
      join(vscode, 'out', 'server-main.js'),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--connection-token-file',
      connectionTokenFile,
      '--accept-server-license-terms',
      '--server-data-dir',
      serverDataDir,
      '--user-data-dir',
      userDataDir,
      '--extensions-dir',
      extensionsDir,
      '--disable-telemetry',
    ];
    // 0600: VS Code prints its URL with the connection token.
    const fd = openSync(logFile, 'w', 0o600);
    chmodSync(logFile, 0o600);
    const child = spawn(process.execPath, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env,
      cwd: tmp,
    });
    closeSync(fd);
    if (child.pid === undefined)
      throw new Error(`could not spawn the VS Code server (${args.join(' ')})`);
    const pid = child.pid;
    child.unref(); // a forgotten server must not keep the test process alive; the exit hook kills it
    trackGroup(pid); // the whole group: extension hosts and the pty host may outlive the server

    const baseUrl = `http://${authority}`;
    let ready = false;
    for (const end = Date.now() + readyTimeoutMs; Date.now() < end;) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      // With the token the workbench answers (a redirect that stores it in a cookie).
      if ((await httpStatus(withToken(`${baseUrl}/`, connectionToken), 2_000)) === 302) {
        ready = true;
        break;
      }
      await sleep(100);
    }
    if (!ready) {
      const exited = child.exitCode !== null || child.signalCode !== null;
      await stopGroup(child);
      lastError =
        `VS Code server ${exited ? `exited (${child.exitCode ?? child.signalCode})` : `not ready within ${readyTimeoutMs} ms`} ` +
        `on ${authority}; log ${logFile}:\n${readTail(logFile)}`;
      if (exited && /EADDRINUSE/.test(readTail(logFile))) continue; // lost the port race: try another
      break;
    }

    const logsRoot = join(userDataDir, 'logs'); // VS Code server keeps its logs under --user-data-dir
    const extensionHostLog = (): string =>
      findFiles(logsRoot, (n) => /^remoteexthost\.log$|^exthost\.log$/.test(n))
        .map((f) => `== ${f}\n${readFileSync(f, 'utf8')}`)
        .join('\n');
    let stopping: Promise<void> | undefined;
    const server: VsCodeServer = {
      port,
      authority,
      baseUrl,
      connectionToken,
      connectionTokenFile,
      serverDataDir,
      userDataDir,
      extensionsDir,
      resultsFile,
      logFile,
      pid,
      remoteUri: (absPath) => `vscode-remote://${authority}${resolve(absPath)}`,
      workbenchUrl: ({ folder, payload }) => {
        const q: string[] = [];
        if (folder !== undefined) q.push(`folder=${encodeURIComponent(resolve(folder))}`);
        if (payload !== undefined) q.push(`payload=${encodeURIComponent(JSON.stringify(payload))}`);
        return withToken(`${baseUrl}/${q.length > 0 ? `?${q.join('&')}` : ''}`, connectionToken);
      },
      extensionHostLog,
      diagnostics: (lines = 60) => {
        const parts = [`-- server log ${logFile}:\n${readTail(logFile, lines)}`];
        for (const f of findFiles(logsRoot, (n) => /exthost\.log$|^remoteagent\.log$/.test(n))) {
          parts.push(`-- ${f}:\n${readTail(f, lines)}`);
        }
        return parts.join('\n');
      },
      stop: () =>
        (stopping ??= (async () => {
          await stopGroup(child);
          // Keep VS Code's own logs (exthost, remote agent, extension output) for debugging.
          if (existsSync(logsRoot)) {
            try {
              cpSync(logsRoot, join(LOGS_DIR, `${name}-server-${port}-logs`), { recursive: true });
            } catch {
              // best effort
            }
          }
          await removeTempDir(tmp);
        })()),
    };
    return server;
  }
  await removeTempDir(tmp);
  throw new Error(lastError);
}

/** Installs a VSIX into `<serverDataDir>/extensions` (or `extensionsDir`) with the server CLI. */
export async function installVsix(
  vsixPath: string,
  serverDataDir: string,
  extensionsDir?: string,
): Promise<string> {
  const vscode = await ensureVsCode();
  const extDir = extensionsDir ?? join(serverDataDir, 'extensions');
  const args = [
    join(vscode, 'out', 'server-main.js'),
    '--install-extension',
    resolve(vsixPath),
    '--force',
    '--server-data-dir',
    serverDataDir,
    '--extensions-dir',
    extDir,
    '--accept-server-license-terms',
  ];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(VSCODE_|ELECTRON_RUN_AS_NODE$)/.test(k)) delete env[k];
  const out = await new Promise<{ code: number; text: string }>((res) => {
    execFile(
      process.execPath,
      args,
      { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, so, se) => {
        res({
          code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1,
          text: `${so}${se}`,
        });
      },
    );
  });
  await mkdir(LOGS_DIR, { recursive: true });
  await writeFile(join(LOGS_DIR, 'install-extension.log'), out.text);
  if (out.code !== 0 || !/successfully installed/i.test(out.text)) {
    throw new Error(
      `--install-extension ${vsixPath} failed (exit ${out.code}):\n${tail(out.text, 30)}`,
    );
  }
  return out.text;
}

// ---- the browser ----------------------------------------------------------------------------
export interface Browser {
  readonly context: BrowserContext;
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export async function launchBrowser(opts: { headless?: boolean } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: run scripts/install-system-deps.sh`);
  const profile = await makeTempDir('k3s-etcd-chromium-');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: opts.headless ?? true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
        // Nothing but loopback resolves: a test page never reaches out (webviews' CDN, gallery…).
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
      ],
      viewport: { width: 1400, height: 900 },
      timeout: 60_000,
    });
  } catch (e) {
    await removeTempDir(profile);
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    context,
    newPage: () => context.newPage(),
    close: () =>
      (closing ??= (async () => {
        try {
          await context.close();
        } finally {
          await removeTempDir(profile);
        }
      })()),
  };
}

/**
 * A UI test file's scope: VS Code prepared before the tests, and the returned list of cleanups
 * run in reverse after them (on failure too).
 */
export function uiTestScope(): Array<() => Promise<void>> {
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    await ensureVsCode();
  });
  after(async () => {
    for (const c of cleanups.splice(0).reverse())
      await c().catch((e: unknown) => console.error('cleanup:', e));
  });
  return cleanups;
}

/**
 * The usual UI test start: a VS Code server with `settings`, a browser page on the workbench of
 * `folder` with the development extension, the K3s etcd view open. Cleanups go to `cleanups`.
 */
export async function openWorkbench(opts: {
  name: string;
  folder: string;
  extension: string;
  settings?: Record<string, unknown>;
  cleanups: Array<() => Promise<void>>;
}): Promise<Page> {
  const server = await startVsCodeServer({
    name: opts.name,
    ...(opts.settings ? { settings: opts.settings } : {}),
  });
  opts.cleanups.push(() => server.stop());
  const browser = await launchBrowser();
  opts.cleanups.push(() => browser.close());
  const page = await browser.newPage();
  await mkdir(SCREENSHOTS_DIR, { recursive: true });
  await page.goto(
    server.workbenchUrl({
      folder: opts.folder,
      payload: [
        ['extensionDevelopmentPath', server.remoteUri(opts.extension)],
        ['skipWelcome', 'true'],
      ],
    }),
    { waitUntil: 'domcontentloaded', timeout: 60_000 },
  );
  await page.getByRole('tab', { name: /^K3s etcd/ }).click({ timeout: 60_000 });
  return page;
}

/** F1, the command's title, Enter: runs a command from the palette as a person does. */
export async function runFromPalette(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input:visible');
  await input.waitFor({ timeout: 15_000 });
  await input.fill(`>${title}`);
  const name = title.replace(/^K3s etcd: /, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  await page
    .locator('.quick-input-list .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`${name}$`) }) })
    .first()
    .waitFor({ timeout: 15_000 });
  await page.keyboard.press('Enter');
}

/** The visible terminal rows (gpuAcceleration off), polled until `re` matches or the deadline. */
export async function waitForTerminal(page: Page, re: RegExp, timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < until) {
    text = (await page.locator('.xterm-rows').allInnerTexts()).join('\n').replace(/\u00a0/g, ' ');
    if (re.test(text)) return text;
    await page.waitForTimeout(250);
  }
  throw new Error(`the terminal never showed ${re}:\n${text}`);
}

/** Collects what a page says to its console, and errors thrown in it. */
export function watchConsole(page: Page): { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  page.on('console', (m) => {
    const line = `[${m.type()}] ${m.text()}`;
    lines.push(line);
    if (m.type() === 'error') errors.push(line);
  });
  page.on('pageerror', (e) => errors.push(`[pageerror] ${e.message}`));
  return { lines, errors };
}

// ---- extension-host tests -------------------------------------------------------------------
export interface TestResult {
  name: string;
  ok: boolean;
  error?: string;
}
export interface SuiteResults {
  tests: TestResult[];
  passed: number;
  failed: number;
}

function parseResults(text: string): SuiteResults {
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null) throw new Error('results are not an object');
  const o = v as Record<string, unknown>;
  const tests = o['tests'];
  if (!Array.isArray(tests)) throw new Error('results.tests is not an array');
  const out: TestResult[] = [];
  for (const t of tests as unknown[]) {
    const r = t as Record<string, unknown>;
    const item: TestResult = { name: String(r['name']), ok: r['ok'] === true };
    if (typeof r['error'] === 'string') item.error = r['error'];
    out.push(item);
  }
  return { tests: out, passed: Number(o['passed']), failed: Number(o['failed']) };
}

/** Prints an in-host suite's results, failures with their errors. */
export function reportSuite(label: string, r: SuiteResults): void {
  console.log(`${label}: ${r.passed} passed, ${r.failed} failed (in the extension host)`);
  for (const t of r.tests) {
    console.log(`  ${t.ok ? 'ok  ' : 'FAIL'} ${t.name}`);
    if (!t.ok && t.error !== undefined) console.log(t.error.replace(/^/gm, '       '));
  }
}

export interface ExtensionHostTestOptions {
  server: VsCodeServer;
  /** Folder to open (absolute path on the server). */
  folder: string;
  /** Absolute path of the extension under development. */
  extensionDevelopmentPath?: string;
  /** Absolute path of the bundled test module exporting `run()`. */
  extensionTestsPath: string;
  timeoutMs?: number;
  /** Reuse a browser; otherwise one is launched and closed. */
  browser?: Browser;
}

export interface ExtensionHostTestRun extends SuiteResults {
  /** Which channel the results came by. */
  via: 'file' | 'console';
  consoleLines: string[];
}

/**
 * Opens the workbench with a payload that makes VS Code load `extensionTestsPath` in the
 * remote (Node) extension host and call its `run()`. The suite writes its results to the file
 * named by K3S_ETCD_TEST_RESULTS (and prints them with RESULTS_CONSOLE_PREFIX as a fallback).
 */
export async function runExtensionHostTests(
  opts: ExtensionHostTestOptions,
): Promise<ExtensionHostTestRun> {
  const { server } = opts;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  await rm(server.resultsFile, { force: true });
  const payload: Array<[string, string]> = [];
  if (opts.extensionDevelopmentPath !== undefined) {
    payload.push(['extensionDevelopmentPath', server.remoteUri(opts.extensionDevelopmentPath)]);
  }
  payload.push(['extensionTestsPath', server.remoteUri(opts.extensionTestsPath)]);
  payload.push(['skipWelcome', 'true']);
  const url = server.workbenchUrl({ folder: opts.folder, payload });

  const browser = opts.browser ?? (await launchBrowser());
  let page: Page | undefined;
  try {
    page = await browser.newPage();
    const watched = watchConsole(page);
    let consoleResults: string | undefined;
    page.on('console', (m) => {
      const text = m.text();
      const i = text.indexOf(RESULTS_CONSOLE_PREFIX);
      if (i >= 0) consoleResults = text.slice(i + RESULTS_CONSOLE_PREFIX.length).trim();
    });
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(200)) {
      if (existsSync(server.resultsFile)) {
        // The suite writes the file once, whole; re-read until it parses to ride out a partial read.
        try {
          const r = parseResults(await readFile(server.resultsFile, 'utf8'));
          return { ...r, via: 'file', consoleLines: watched.lines };
        } catch {
          // not complete yet
        }
      }
      if (consoleResults !== undefined) {
        try {
          return { ...parseResults(consoleResults), via: 'console', consoleLines: watched.lines };
        } catch {
          // keep waiting for the file
        }
      }
    }
    const shot = join(SCREENSHOTS_DIR, `timeout-${Date.now()}.png`);
    await mkdir(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot }).catch(() => undefined);
    throw new Error(
      `no in-host test results within ${timeoutMs} ms (screenshot ${shot})\n` +
        `url: ${url}\n-- page console errors:\n${watched.errors.slice(-40).join('\n')}\n` +
        `-- page console (last lines):\n${watched.lines.slice(-40).join('\n')}\n${server.diagnostics()}`,
    );
  } finally {
    await page?.close().catch(() => undefined);
    if (opts.browser === undefined) await browser.close();
  }
}

/**
 * Runs an in-host suite with `runExtensionHostTests()` (default timeout 180 s), reports it as
 * `label (results via file|console)` and asserts it passed: no failed test (their errors and the
 * server's diagnostics in the message), and at least `minTests` tests ran. Returns the run.
 */
export async function assertSuitePassed(
  label: string,
  opts: ExtensionHostTestOptions,
  minTests = 1,
): Promise<ExtensionHostTestRun> {
  const run = await runExtensionHostTests({ timeoutMs: 180_000, ...opts });
  reportSuite(`${label} (results via ${run.via})`, run);
  assert.deepEqual(
    run.tests.filter((t) => !t.ok).map((t) => `${t.name}: ${t.error ?? ''}`),
    [],
    `in-host failures\n${opts.server.diagnostics(40)}`,
  );
  assert.ok(run.tests.length >= minTests, `only ${run.tests.length} in-host tests ran`);
  assert.equal(run.failed, 0);
  return run;
}

/** Copies a folder (e.g. examples/edge-lab) into a fresh temp dir so tests never dirty the repo. */
export async function copyToTemp(src: string, prefix = 'k3s-etcd-ws-'): Promise<string> {
  const dir = await makeTempDir(prefix);
  cpSync(src, dir, { recursive: true });
  return dir;
}
