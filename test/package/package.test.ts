/**
 * Package tier: the built VSIX, installed with the VS Code server's `--install-extension` into a
 * fresh server-data dir, loads in the REAL VS Code 1.100.3 Node extension host with no
 * development copy of k3s-etcd around, activates, shows the example inventory, and reaches a real
 * etcd through etcd3 (whose .proto files must be found inside the packaged bundle).
 *
 * The VSIX is $K3S_ETCD_VSIX, or else the newest k3s-etcd-*.vsix in the repo root (`npm run
 * package` makes it). The in-host suite is out/test/package-suite.js (`npm run build`).
 * Run: node --import tsx --test test/package/package.test.ts
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import {
  assertSuitePassed,
  copyToTemp,
  ensureVsCode,
  installVsix,
  makeTempDir,
  removeTempDir,
  REPO_ROOT,
  startVsCodeServer,
} from '../editor/harness/vscode';
import { startEtcdCluster } from '../../scripts/harness/etcd';

const EXAMPLE = join(REPO_ROOT, 'examples', 'edge-lab');
const SUITE_JS = join(REPO_ROOT, 'out', 'test', 'package-suite.js');
/** An empty development extension with another id: VS Code runs extensionTestsPath only with one. */
const RUNNER_EXT = join(REPO_ROOT, 'test', 'package', 'runner-ext');
const MEMBER = 'pkg-1';

function findVsix(): string {
  const fromEnv = process.env['K3S_ETCD_VSIX'];
  if (fromEnv !== undefined && fromEnv !== '') {
    assert.ok(existsSync(fromEnv), `K3S_ETCD_VSIX=${fromEnv} does not exist`);
    return resolve(fromEnv);
  }
  const candidates = readdirSync(REPO_ROOT)
    .filter((f) => /^k3s-etcd-.*\.vsix$/.test(f))
    .map((f) => join(REPO_ROOT, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  const newest = candidates[0];
  assert.ok(newest, 'no VSIX: run `npm run package` (or set K3S_ETCD_VSIX) first');
  return newest;
}

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse())
    await c().catch((e: unknown) => console.error('cleanup:', e));
});

before(async () => {
  await ensureVsCode();
  assert.ok(existsSync(SUITE_JS), `${SUITE_JS} is missing: run \`npm run build\` first`);
});

test(
  'the installed VSIX activates, shows edge-a and lists members of a real etcd',
  { timeout: 300_000 },
  async () => {
    const vsix = findVsix();
    console.log(`VSIX under test: ${vsix}`);

    const etcd = await startEtcdCluster({ members: 1, names: [MEMBER] });
    cleanups.push(() => etcd.stop());
    const endpoint = etcd.endpoints[0];
    assert.ok(endpoint, 'the etcd harness gave no endpoint');

    const serverDataDir = await makeTempDir('k3s-etcd-pkg-data-');
    cleanups.push(() => removeTempDir(serverDataDir));
    const extensionsDir = join(serverDataDir, 'extensions');
    await installVsix(vsix, serverDataDir);
    const installed = readdirSync(extensionsDir).filter((d) => /^k3s-etcd\.k3s-etcd-/.test(d));
    assert.equal(
      installed.length,
      1,
      `installed into ${extensionsDir}: ${readdirSync(extensionsDir).join(', ')}`,
    );

    const folder = await copyToTemp(EXAMPLE);
    cleanups.push(() => removeTempDir(folder));
    const server = await startVsCodeServer({
      name: 'package',
      serverDataDir,
      env: {
        K3S_ETCD_TEST_ENDPOINT: endpoint,
        K3S_ETCD_TEST_MEMBER: MEMBER,
        K3S_ETCD_EXPECT_EXTENSIONS_DIR: extensionsDir,
        K3S_ETCD_REPO_ROOT: REPO_ROOT,
      },
    });
    cleanups.push(() => server.stop());

    const r = await assertSuitePassed(
      'package suite',
      { server, folder, extensionDevelopmentPath: RUNNER_EXT, extensionTestsPath: SUITE_JS },
      4,
    );
    assert.ok(
      r.tests.some((t) => /listMembers/.test(t.name)),
      'the listMembers test did not run (K3S_ETCD_TEST_ENDPOINT not seen in the extension host?)',
    );
  },
);

test('the VSIX carries the bundles, protos, schema and media, and no sources, tests or maps', () => {
  const names = execFileSync(
    'python3',
    [
      '-c',
      'import sys, zipfile; print("\\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))',
      findVsix(),
    ],
    { encoding: 'utf8' },
  )
    .trim()
    .split('\n')
    .filter((n) => n.startsWith('extension/'))
    .map((n) => n.slice('extension/'.length));
  for (const must of [
    'package.json',
    'readme.md', // vsce's names for README.md, CHANGELOG.md and LICENSE
    'changelog.md',
    'LICENSE.txt',
    'dist/extension.js',
    'dist/cli.js',
    'dist/cliMain.js',
    'dist/cliCommands.js',
    'dist/etcd3.js',
    'dist/x509.js',
    'dist/perfWorker.js',
    'dist/proto/rpc.proto',
    'dist/proto/kv.proto',
    'dist/proto/auth.proto',
    'dist/webview/overview.js',
    'dist/webview/health.js',
    'dist/webview/codicons/codicon.css',
    'dist/webview/codicons/codicon.ttf',
    'media/k3s-etcd.svg',
    'media/walkthrough/inventory.md',
    'schemas/k3s-etcd.schema.json',
  ]) {
    assert.ok(names.includes(must), `${must} missing from the VSIX`);
  }
  // Every file a shipped bundle loads lazily (require("./x.js"); dist/cli.js runs
  // dist/cliMain.js through the code cache: join(__dirname, "cliMain.js")), and what those load,
  // must ship too.
  const read = (file: string) =>
    execFileSync(
      'python3',
      [
        '-c',
        'import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode())',
        findVsix(),
        `extension/${file}`,
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
  for (const bundle of ['dist/extension.js', 'dist/cli.js']) {
    const reached = new Set<string>();
    const queue = [bundle];
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const text = read(file);
      const deps = [
        ...[...text.matchAll(/[\w$]\("\.\/([\w-]+\.js)"\)/g)].map((m) => `dist/${m[1]}`),
        ...[...text.matchAll(/\(__dirname, ?"([\w-]+\.js)"\)/g)].map((m) => `dist/${m[1]}`),
      ];
      for (const dep of deps) {
        assert.ok(names.includes(dep), `${dep} (loaded by ${file}) missing from the VSIX`);
        if (!reached.has(dep)) queue.push(dep);
        reached.add(dep);
      }
    }
    assert.ok(reached.has('dist/ssh2.js'), `${bundle} loads ssh2 lazily`);
    if (bundle === 'dist/cli.js')
      // It runs in a vm.Script, where import() has no loader: lazy built-ins are require()d.
      assert.doesNotMatch(read('dist/cliMain.js'), /\bimport\(/, 'import() in dist/cliMain.js');
  }
  const unwanted = names.filter(
    (n) => /\.(ts|map)$/.test(n) || /^(src|test|webview|scripts|node_modules|examples)\//.test(n),
  );
  assert.deepEqual(unwanted, [], 'sources, tests or maps in the VSIX');
});

test('the k3s-etcd CLI runs from the unpacked VSIX: validates the example and lists a real etcd', async () => {
  const dir = await makeTempDir('k3s-etcd-pkg-cli-');
  cleanups.push(() => removeTempDir(dir));
  execFileSync('python3', [
    '-c',
    'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])',
    findVsix(),
    dir,
  ]);
  const cli = join(dir, 'extension', 'dist', 'cli.js');
  // The code cache (src/cli/codeCache.ts) in a folder of this test: the first run writes it, the
  // next ones read it; with it, without one and turned off, the same answers.
  const cache = join(dir, 'cache');
  const env = { ...process.env, XDG_CACHE_HOME: cache };
  const runs = [env, env, { ...env, K3S_ETCD_NO_CODE_CACHE: '1' }].map((e) =>
    spawnSync(process.execPath, [cli, 'inventory', 'validate'], {
      cwd: EXAMPLE,
      encoding: 'utf8',
      env: e,
    }),
  );
  for (const validate of runs) {
    assert.equal(validate.status, 0, validate.stderr);
    assert.equal(
      validate.stdout.trim(),
      'k3s-etcd.yaml: valid (1 cluster, 3 hosts, 3 etcd members)',
    );
    assert.equal(validate.stderr, '');
  }
  assert.equal(
    readdirSync(join(cache, 'k3s-etcd')).filter((f) => f.endsWith('.v8')).length,
    1,
    'one code cache file',
  );

  const etcd = await startEtcdCluster({ members: 1, names: ['cli-1'] });
  cleanups.push(() => etcd.stop());
  const members = spawnSync(
    process.execPath,
    [cli, 'members', '--endpoints', etcd.endpoints.join(','), '--json'],
    { encoding: 'utf8', env },
  );
  assert.equal(members.status, 0, members.stderr);
  const parsed = JSON.parse(members.stdout) as Array<{ name: string; clientUrls: string[] }>;
  assert.deepEqual(
    parsed.map((m) => [m.name, m.clientUrls]),
    [['cli-1', etcd.endpoints]],
  );
  assert.doesNotMatch(members.stderr, /DEP0123|Warning/);
  // status also reads each member's /metrics (node:http, required on the first scrape).
  const status = spawnSync(
    process.execPath,
    [cli, 'status', '--endpoints', etcd.endpoints.join(','), '--json'],
    { encoding: 'utf8', env },
  );
  assert.equal(status.status, 0, status.stderr);
  const rows = JSON.parse(status.stdout) as Array<{ endpoint: string; quotaBackendBytes?: number }>;
  assert.deepEqual(
    rows.map((r) => [r.endpoint, typeof r.quotaBackendBytes]),
    [[etcd.endpoints[0], 'number']],
  );

  // The migration's SQLite reader (plain JavaScript, in dist/cli.js) works from the package.
  const state = join(dir, 'state.db');
  execFileSync('sqlite3', [
    state,
    "CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB); INSERT INTO kine VALUES(1, '/registry/x', 1, 0, 0, 0, 0, X'6869', NULL);",
  ]);
  const dry = spawnSync(
    process.execPath,
    [cli, 'migrate', 'sqlite-to-etcd', '--source', state, '--dry-run', '--json'],
    { cwd: EXAMPLE, encoding: 'utf8', env },
  );
  assert.equal(dry.status, 0, dry.stderr);
  assert.equal((JSON.parse(dry.stdout) as { liveKeys: number }).liveKeys, 1);
});
