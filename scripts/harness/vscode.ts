/**
 * The REAL VS Code 1.100.3 server that ships inside the code-server npm package (prepared
 * offline by scripts/setup-vscode.sh), and headless Debian Chromium through playwright-core: for
 * the editor and package tests (test/editor/harness/vscode.ts builds on this), the lab's system
 * test and the bench's activation figures.
 *
 * - `ensureVsCode()` prepares (or finds) the VS Code build; it throws, never skips.
 * - `startVsCodeServer()` starts `out/server-main.js` on 127.0.0.1 and a free port, with temp
 *   server-data and user-data dirs and a connection token in a 0600 file (the server refuses
 *   requests without it; `workbenchUrl()` carries it), and waits for HTTP readiness against a
 *   deadline.
 * - `installVsix()` installs a VSIX into a server-data dir with `--install-extension`.
 * - `launchBrowser()` starts Chromium with a fresh profile.
 *
 * Everything is torn down by `stop()`/`close()` (process groups are killed, temp dirs removed),
 * and one process-level exit/SIGINT/SIGTERM hook SIGKILLs whatever a crashed process left behind.
 * Server output and VS Code's own logs are kept under test-results/logs/ for debugging.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, cpSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { ensureConnectionTokenFile, withToken } from '../lab/connectionToken.mjs';
import { findFiles } from './files';
import { freePort, httpStatus } from './net';
import type { BrowserContext, Page } from 'playwright-core';
import {
  groupAlive,
  killGroup,
  makeTempDir,
  removeTempDir,
  sleep,
  trackGroup,
  untrackGroup,
} from './processes';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const RESULTS_DIR = join(REPO_ROOT, 'test-results');
export const LOGS_DIR = join(RESULTS_DIR, 'logs');
export const SCREENSHOTS_DIR = join(RESULTS_DIR, 'screenshots');
/** Env var naming the JSON results file an in-host suite writes. */
export const RESULTS_ENV = 'K3S_ETCD_TEST_RESULTS';
/** Prefix of the console line an in-host suite also prints with the same JSON (fallback channel). */
export const RESULTS_CONSOLE_PREFIX = 'K3S_ETCD_TEST_RESULTS_JSON:';
const CHROMIUM = '/usr/bin/chromium';

// Process groups and temp dirs of this process are tracked by ./processes.ts.
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

/** A workbench that starts on nothing and asks nothing: no tips, updates or telemetry. */
export const QUIET_WORKBENCH = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
} as const;

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
    ...QUIET_WORKBENCH,
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

export async function launchBrowser(
  opts: {
    headless?: boolean;
    /** More loopback addresses the page may reach (a VS Code server inside an edge host). */
    loopback?: readonly string[];
  } = {},
): Promise<Browser> {
  const extra = (opts.loopback ?? []).map((a) => {
    if (!/^127(\.\d{1,3}){3}$/.test(a)) throw new Error(`launchBrowser: ${a} is not loopback`);
    return `, EXCLUDE ${a}`;
  });
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
        `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost${extra.join('')}`,
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

/** Copies a folder (e.g. examples/edge-lab) into a fresh temp dir so tests never dirty the repo. */
export async function copyToTemp(src: string, prefix = 'k3s-etcd-ws-'): Promise<string> {
  const dir = await makeTempDir(prefix);
  cpSync(src, dir, { recursive: true });
  return dir;
}
