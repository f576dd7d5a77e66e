/**
 * Editor-test harness on top of scripts/harness/vscode.ts (the real VS Code server and
 * Chromium, re-exported here): a UI test file's scope, a workbench opened on a folder, the
 * command palette and terminal as a person uses them, and `runExtensionHostTests()`, which opens
 * a workbench whose payload names an extension under development and an in-host test module and
 * waits for the results file that module writes.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { sleep } from '../../../scripts/harness/processes';
import {
  ensureVsCode,
  launchBrowser,
  RESULTS_CONSOLE_PREFIX,
  SCREENSHOTS_DIR,
  startVsCodeServer,
  type Browser,
  type VsCodeServer,
} from '../../../scripts/harness/vscode';

export * from '../../../scripts/harness/vscode';

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

/**
 * Right-click `item`, run the menu entry `title` (hover, Enter: the menu can miss a click that
 * comes right as it opens), until `started` shows: a re-render of the tree can swallow the
 * right-click, so it is retried to a deadline, with a screenshot `<shot>-attempt-N.png` each time.
 */
export async function runFromContextMenu(
  page: Page,
  item: Locator,
  title: string | RegExp,
  started: Locator,
  shot: string,
  timeoutMs = 60_000,
): Promise<void> {
  const entry = page.locator('.context-view .action-label', { hasText: title });
  const until = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await item.first().click({ button: 'right' });
      await entry.first().waitFor({ timeout: 10_000 });
      await entry.first().hover();
      await page.keyboard.press('Enter');
      await started.first().waitFor({ timeout: 15_000 });
      return;
    } catch (err) {
      // It ran and only the sign of it was slow: never run a command twice.
      if (await started.count()) return;
      await page.screenshot({ path: join(SCREENSHOTS_DIR, `${shot}-attempt-${attempt}.png`) });
      if (Date.now() > until) throw err;
      await page.keyboard.press('Escape');
    }
  }
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

/**
 * After "Fix Peer URL": the toast naming `host`'s new peer URL, the cluster 3/3 healthy and
 * `host`'s row at its new address.
 */
export async function waitRepaired(
  page: Page,
  host: string,
  address: string,
  timeoutMs = 90_000,
): Promise<void> {
  await page
    .locator('.notifications-toasts', { hasText: `${host} now at https://${address}:2380` })
    .waitFor({ timeout: timeoutMs });
  await page.getByRole('treeitem', { name: /^lab, 3\/3 healthy/ }).waitFor({ timeout: 60_000 });
  await page
    .getByRole('treeitem', { name: new RegExp(`^${host}, .*${address.replace(/\./g, '\\.')}`) })
    .waitFor({ timeout: 30_000 });
}

/**
 * Expands `item` until `child` shows: a live refresh re-rendering the tree can swallow a click,
 * or turn it into expand-then-collapse, so the click is repeated while the item stays folded.
 */
export async function expandUntil(
  page: Page,
  item: Locator,
  child: Locator,
  timeoutMs = 15_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await child.isVisible())) {
    if (Date.now() > until) await child.waitFor({ timeout: 1 });
    if ((await item.getAttribute('aria-expanded')) !== 'true') await item.click();
    await page.waitForTimeout(250);
  }
}
