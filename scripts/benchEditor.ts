/**
 * `npm run bench -- editor`: the editor's first etcd answer. The packaged VSIX in the real VS
 * Code, a workspace whose inventory points at a real 3-member mutual-TLS etcd, the K3s etcd view
 * open at start (the first load opens it; Developer: Reload Window keeps it open and starts a
 * new extension host), so every run loads the bundle, activates, and makes its first health
 * refresh from nothing. The figures are the extension's own log line ("First health of ... N ms after
 * activation began (the refresh M ms ...)"), median of BENCH_RUNS (7) loads after the first.
 * K3S_ETCD_VSIX=/path/to.vsix measures another build (a before/after).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { etcdWithOurCerts } from './harness/etcdTls';
import type { EtcdCluster } from './harness/etcd';
import { findFiles } from './harness/files';
import { harnessInventory } from './harness/inventory';
import {
  installVsix,
  launchBrowser,
  makeTempDir,
  removeTempDir,
  startVsCodeServer,
} from './harness/vscode';
import { median } from './benchStats';

const root = join(__dirname, '..');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 7);

/** The two numbers each match of `re` captures, over every log of the extension in `logDir`. */
export function extensionLogFigures(logDir: string, re: RegExp): Array<[number, number]> {
  return findFiles(logDir, (n) => n === 'K3s etcd.log').flatMap((f) =>
    [...readFileSync(f, 'utf8').matchAll(re)].map((m): [number, number] => [
      Number(m[1]),
      Number(m[2]),
    ]),
  );
}

/** [after activation began, the refresh itself] per first health, from the extension's logs. */
const firstHealth = (logDir: string) =>
  extensionLogFigures(
    logDir,
    /First health of \S+ ([\d.]+) ms after activation began \(the refresh ([\d.]+) ms/g,
  );

function packagedVsix(): string {
  if (process.env['K3S_ETCD_VSIX']) return process.env['K3S_ETCD_VSIX'];
  execFileSync('npm', ['run', '--silent', 'package'], { cwd: root, stdio: 'ignore' });
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    version: string;
  };
  return join(root, `k3s-etcd-${version}.vsix`);
}

export async function benchEditor(built?: string): Promise<void> {
  const vsix = built ?? packagedVsix();
  const data = await makeTempDir('k3s-etcd-bench-editor-');
  const folder = await makeTempDir('k3s-etcd-bench-editor-ws-');
  const clusters: EtcdCluster[] = [];
  try {
    const { etcd } = await etcdWithOurCerts(join(folder, 'pki'), 3, {
      track: (c) => clusters.push(c),
      extra: { samePorts: true },
    });
    await writeFile(join(folder, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    await installVsix(vsix, data);
    const server = await startVsCodeServer({ name: 'bench-editor', serverDataDir: data });
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      for (let i = 0; i <= RUNS; i++) {
        if (i === 0) {
          await page.goto(server.workbenchUrl({ folder }), { waitUntil: 'domcontentloaded' });
          await page.getByRole('tab', { name: /^K3s etcd/ }).click({ timeout: 60_000 });
        } else {
          // Developer: Reload Window: VS Code saves its state (the view stays open) and starts a
          // new extension host, which activates and makes its first refresh with the view open.
          await page.keyboard.press('F1');
          const input = page.locator('.quick-input-widget input:visible');
          await input.waitFor({ timeout: 15_000 });
          await input.fill('>Developer: Reload Window');
          await page.locator('.quick-input-list .monaco-list-row').first().waitFor();
          await page.keyboard.press('Enter');
        }
        const deadline = Date.now() + 60_000;
        while (firstHealth(server.userDataDir).length < i + 1) {
          if (Date.now() > deadline) {
            if (process.env['BENCH_SHOT'])
              await page.screenshot({ path: process.env['BENCH_SHOT'] });
            throw new Error(
              `load ${i + 1}: no first health in the extension's log\n${server.diagnostics()}`,
            );
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const runs = firstHealth(server.userDataDir).slice(1);
      const after = runs.map(([a]) => a);
      const refresh = runs.map(([, r]) => r);
      console.log(
        `Editor's first health (installed ${vsix.split('/').pop()}, 3-member TLS etcd, ${runs.length} page loads with the view open): ` +
          `median ${median(after).toFixed(0)} ms after activation began (min ${Math.min(...after).toFixed(0)}, max ${Math.max(...after).toFixed(0)}); ` +
          `the first refresh itself median ${median(refresh).toFixed(0)} ms`,
      );
    } finally {
      await browser.close();
      await server.stop();
    }
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    await removeTempDir(data);
    await removeTempDir(folder);
  }
}
