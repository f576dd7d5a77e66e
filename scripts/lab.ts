/**
 * The lab: `npm run lab` (the README's main-job command). On a Linux machine, as root:
 *
 *  1. installs the Debian packages that are missing (scripts/install-system-deps.sh), builds and
 *     packages the extension (`npm run package` makes k3s-etcd-<version>.vsix, then
 *     `npm run build` puts the development build back in dist/, as `npm run test:all` leaves it);
 *  2. prepares the real VS Code (the one inside the code-server npm package, scripts/setup-vscode.sh)
 *     and the cached Debian root file system of the edge hosts (debootstrap once);
 *  3. writes the lab workspace `<state>/workspace/`: an SSH key made for the lab
 *     (`id_lab_ed25519`, 0600), `k3s-etcd.yaml` naming the hosts (cluster `lab`, edge-1..3,
 *     that key, `knownHostsFile: known_hosts`, etcd uploaded from `etcd-bin/`), Debian's etcd and
 *     etcdctl in `etcd-bin/` so provisioning works offline;
 *  4. starts a detached keeper process (scripts/lab/keeper.ts) that boots three edge hosts
 *     (Debian 12 in systemd-nspawn with systemd and sshd, each on its own 127.0.1.x, an overlay
 *     over the cached root), writes their host keys to `known_hosts`, and starts VS Code on
 *     127.0.0.1:PORT with the VSIX installed and the workspace as its default folder; then
 *     prints the URL and what to try first, and returns.
 *
 * VS Code runs as root here, and its terminal is a root shell: it needs a connection token
 * (random, in `<state>/connection-token`, 0600, kept across restarts) and refuses every request
 * without it; the printed URL carries it (`?tkn=`). The state dir is 0700 and the files that hold
 * the URL (lab.json, keeper.json, the logs) are 0600, so no other local user can read it.
 *
 * The hosts and VS Code keep running in the background, owned by the keeper; `<state>/lab.json`
 * records the URL, port, addresses, the keeper's, VS Code's and each host's processes (pid and
 * start time, so a reused pid is never mistaken for them), host dirs and cgroups.
 * A second `npm run lab` while one runs says "The lab is already running: <URL>" and exits 0; if
 * the recorded lab is only partly alive, it is cleared and a fresh one starts.
 * `npm run lab -- --down` asks the keeper to stop (VS Code's process group, a clean poweroff of
 * each host, their overlays/dirs/cgroups removed), sweeps anything a dead keeper left behind,
 * removes lab.json and checks the ports are free. The workspace stays.
 *
 * Re-runs: the lab key and etcd-bin are reused; known_hosts is rewritten on every start (every
 * boot makes new host keys); `k3s-etcd.yaml` is written only when it is missing, so your edits
 * survive (delete it to get a fresh one; a warning names any lab address it no longer mentions).
 * VS Code's settings (`<state>/user/User/settings.json`: workspace trust off, no start-up editor)
 * are written only when missing; the VSIX is installed again (--force) on every start.
 *
 * `--remote edge-N` runs VS Code ON that host instead, as Remote-SSH would (scripts/lab/remote.ts):
 * as its user `edge`, with a copy of the workspace in /home/edge/lab, on the host's address; the
 * host's own provisioning steps then run in VS Code's terminal through sudo.
 *
 * Where the lab cannot run (not Linux, not root, no systemd-nspawn) it says exactly why and how
 * to use the extension with real hosts instead, and exits 2 (scripts/lab/preflight.mjs).
 * Everything listens on 127.0.0.0/8 only. Run `npm run lab -- --help` for the flags.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ensureRootfs } from './harness/edgeHosts';
import { ensureConnectionTokenFile, withToken } from './lab/connectionToken.mjs';
import { labInventory, LAB_ETCD_BIN, LAB_KNOWN_HOSTS, stageEtcdBinaries } from './harness/lab';
import { makeKey } from './harness/sshd';
import { runKeeper, REPORT_FD, type KeeperConfig, type KeeperMessage } from './lab/keeper';
import { labPreflight, machineFacts, refusalText } from './lab/preflight.mjs';
import {
  deadParts,
  listening,
  readState,
  takeLock,
  teardown,
  waitFor,
  type LabState,
} from './lab/state';

const REPO = resolve(__dirname, '..');
const VERSION = (
  JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }
).version;
const VSIX = `k3s-etcd-${VERSION}.vsix`;
const DEFAULT_STATE = join(homedir(), '.cache', 'k3s-etcd', 'lab');
const DEFAULT_PORT = 8790;
const DEFAULT_ADDRESSES = ['127.0.1.11', '127.0.1.12', '127.0.1.13'];
const KEY_NAME = 'id_lab_ed25519';
const CONNECTION_TOKEN_FILE = 'connection-token';
const CLUSTER = 'lab';

const USAGE = `Usage: npm run lab [-- OPTIONS]
       node --import tsx scripts/lab.ts [OPTIONS]

Brings up the lab: three local edge hosts (Debian 12 with systemd and sshd, in systemd-nspawn,
on 127.0.1.x) and the real VS Code with the K3s etcd extension installed and a workspace whose
k3s-etcd.yaml names the hosts. Prints the URL and returns; everything keeps running.
Linux, as root.

Options:
  --down              stop VS Code and the hosts, remove the hosts (the workspace stays)
  --no-browser        never open a browser (default: only print the URL, and open it with
                      xdg-open when a desktop is there: DISPLAY or WAYLAND_DISPLAY set)
  --no-build          do not install system packages or build: use the ${VSIX} in the repo
  --state DIR         the lab's directory (default ${DEFAULT_STATE})
  --port N            VS Code's port on 127.0.0.1 (default ${DEFAULT_PORT})
  --addresses A,B,C   the hosts' loopback addresses (default ${DEFAULT_ADDRESSES.join(',')})
  --remote HOST       run VS Code ON that edge host (e.g. edge-1), as Remote-SSH would: as its
                      user edge, workspace /home/edge/lab, port N on the host's address; the
                      host's own steps then run in VS Code's terminal through sudo
  -h, --help          this text

A second \`npm run lab\` while the lab runs prints its URL.`;

class UsageError extends Error {}

interface LabOptions {
  down: boolean;
  noBrowser: boolean;
  noBuild: boolean;
  stateDir: string;
  port: number;
  addresses: string[];
  /** --remote: the edge host VS Code runs on. */
  remote: string | undefined;
  help: boolean;
  /** Internal: run as the keeper with this config file. */
  keeper: string | undefined;
}

function parseOptions(argv: string[]): LabOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        down: { type: 'boolean', default: false },
        'no-browser': { type: 'boolean', default: false },
        'no-build': { type: 'boolean', default: false },
        state: { type: 'string' },
        port: { type: 'string' },
        addresses: { type: 'string' },
        remote: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        keeper: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  const port = v.port === undefined ? DEFAULT_PORT : Number(v.port);
  if (!Number.isInteger(port) || port < 1024 || port > 65535) {
    throw new UsageError(`--port ${v.port}: a port number from 1024 to 65535`);
  }
  const addresses =
    v.addresses === undefined ? DEFAULT_ADDRESSES : v.addresses.split(',').map((a) => a.trim());
  for (const a of addresses) {
    const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
    if (!m || m.slice(1).some((o) => Number(o) > 255) || a === '127.0.0.1') {
      throw new UsageError(
        `--addresses: ${a} is not a loopback address other than 127.0.0.1 (127.x.y.z)`,
      );
    }
  }
  if (
    addresses.length < 1 ||
    addresses.length > 9 ||
    new Set(addresses).size !== addresses.length
  ) {
    throw new UsageError('--addresses: one to nine different addresses, comma-separated');
  }
  if (v.remote !== undefined && !hostNames(addresses).some((h) => h.name === v.remote)) {
    throw new UsageError(
      `--remote ${v.remote}: one of the lab's hosts (${hostNames(addresses)
        .map((h) => h.name)
        .join(', ')})`,
    );
  }
  return {
    down: v.down === true,
    remote: v.remote,
    noBrowser: v['no-browser'] === true,
    noBuild: v['no-build'] === true,
    stateDir: resolve(v.state ?? DEFAULT_STATE),
    port,
    addresses,
    help: v.help === true,
    keeper: v.keeper,
  };
}

const say = (line: string) => console.log(`[lab] ${line}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Runs a command; throws naming it when it fails. `quiet`: its output is shown only then (the
 * packaging step lists every file of the VSIX otherwise).
 */
function step(what: string, cmd: string, args: string[], quiet = false): Promise<void> {
  say(what);
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, {
      cwd: REPO,
      stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', rej);
    child.once('exit', (code, signal) => {
      if (code === 0) return res();
      if (quiet) process.stderr.write(output);
      rej(new Error(`${[cmd, ...args].join(' ')} failed (${code ?? signal}) while ${what}`));
    });
  });
}

/** The workbench URL with the lab workspace open, carrying the connection token. */
function labUrl(port: number, workspace: string, token: string): string {
  return withToken(
    `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace).replace(/%2F/g, '/')}`,
    token,
  );
}

function hostNames(addresses: readonly string[]): { name: string; address: string }[] {
  return addresses.map((address, i) => ({ name: `edge-${i + 1}`, address }));
}

// ---- the workspace --------------------------------------------------------------------------

async function prepareWorkspace(opts: LabOptions, workspace: string): Promise<string> {
  await mkdir(workspace, { recursive: true });
  const key = join(workspace, KEY_NAME);
  if (!existsSync(key) || !existsSync(`${key}.pub`)) {
    rmSync(key, { force: true });
    rmSync(`${key}.pub`, { force: true });
    makeKey(workspace, KEY_NAME);
    say(`made the lab's SSH key ${key}`);
  }
  chmodSync(key, 0o600);
  const publicLine = (await readFile(`${key}.pub`, 'utf8')).trim();

  const bin = join(workspace, LAB_ETCD_BIN);
  if (!['etcd', 'etcdctl'].every((b) => existsSync(join(bin, b)))) {
    for (const b of ['etcd', 'etcdctl']) {
      if (!existsSync(`/usr/bin/${b}`)) {
        throw new Error(
          `/usr/bin/${b} is missing (Debian's etcd-server/etcd-client): run without --no-build, or bash scripts/install-system-deps.sh`,
        );
      }
    }
    rmSync(bin, { recursive: true, force: true });
    await stageEtcdBinaries(workspace);
  }

  const yaml = join(workspace, 'k3s-etcd.yaml');
  if (!existsSync(yaml)) {
    const text = labInventory({
      cluster: CLUSTER,
      datastore: 'external-etcd',
      hosts: hostNames(opts.addresses),
      identityFile: KEY_NAME,
    });
    await writeFile(
      yaml,
      [
        '# The lab (npm run lab): three local edge hosts with systemd and sshd, reached with the',
        `# lab's key ${KEY_NAME}; their host keys are in ${LAB_KNOWN_HOSTS} (rewritten at every start).`,
        '# Edit freely: the lab keeps this file. Delete it to get a fresh one.',
        text,
      ].join('\n'),
    );
  } else {
    const text = await readFile(yaml, 'utf8');
    const missing = opts.addresses.filter((a) => !text.includes(a));
    if (missing.length > 0) {
      say(
        `warning: ${yaml} is kept (it may hold your edits) but does not mention ${missing.join(', ')}; ` +
          'delete it and run the lab again to get one naming the lab hosts',
      );
    }
  }
  return publicLine;
}

async function writeSettings(userDataDir: string): Promise<void> {
  const file = join(userDataDir, 'User', 'settings.json');
  if (existsSync(file)) return;
  await mkdir(join(userDataDir, 'User'), { recursive: true });
  const settings = {
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
  };
  await writeFile(file, `${JSON.stringify(settings, null, 2)}\n`);
}

/** Installs the VSIX into the lab's extensions dir with VS Code's own --install-extension. */
function installVsix(
  vscodeDir: string,
  vsix: string,
  serverDataDir: string,
  extensionsDir: string,
) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(VSCODE_|ELECTRON_RUN_AS_NODE$)/.test(k)) delete env[k];
  const r = spawnSync(
    process.execPath,
    [
      join(vscodeDir, 'out', 'server-main.js'),
      '--install-extension',
      vsix,
      '--force',
      '--server-data-dir',
      serverDataDir,
      '--extensions-dir',
      extensionsDir,
      '--accept-server-license-terms',
    ],
    { env, encoding: 'utf8', timeout: 120_000 },
  );
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0 || !/successfully installed/i.test(out)) {
    throw new Error(`installing ${vsix} into VS Code failed (${r.status ?? r.signal}):\n${out}`);
  }
}

// ---- up -------------------------------------------------------------------------------------

function printAlreadyRunning(state: LabState): void {
  console.log(`The lab is already running: ${state.url}`);
  console.log(`  hosts      ${state.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}`);
  console.log(`  workspace  ${state.workspace}`);
  console.log('  stop it:   npm run lab -- --down');
}

function printSummary(state: LabState, totalMs: number): void {
  const ws = state.workspace;
  const first = state.hosts[0]?.address ?? state.addresses[0] ?? '';
  const lines = [
    '',
    `The lab is up (in ${seconds(totalMs)}; hosts and VS Code took ${seconds(state.upMs ?? 0)}).`,
    '',
    `  Open        ${state.url}`,
    `  Workspace   ${ws}`,
    `              k3s-etcd.yaml, the lab's SSH key ${KEY_NAME}, ${LAB_KNOWN_HOSTS}, ${LAB_ETCD_BIN}/`,
    `  Hosts       ${state.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}`,
    '              Debian 12, systemd, sshd; users root (the lab key), edge (sudo asks for',
    '              edge-sudo-pw), edgenp (sudo without a password)',
    `  SSH         ssh -i ${state.key} -o UserKnownHostsFile=${state.knownHosts} root@${first}`,
    ...(state.remote
      ? [
          `  Remote      VS Code runs ON ${state.remote.host}, as ${state.remote.user}, in ${state.remote.workspace}`,
          `              (the lab key and known_hosts are also in ~${state.remote.user}/.ssh there). Provisioning`,
          `              runs ${state.remote.host}'s steps in VS Code's terminal: sudo asks for edge-sudo-pw`,
          '              there; the other hosts run over SSH from it.',
        ]
      : []),
    `  Logs        ${state.log}, ${state.vscodeLog}`,
    '',
    'What to try first:',
    `  1. Click the K3s etcd icon in the activity bar: cluster "${CLUSTER}"; expand it for ${state.hosts.map((h) => h.name).join(', ')}.`,
    `  2. Right-click "${CLUSTER}" → Generate Certificate Set (CA, server, peer and client certificates).`,
    `  3. Right-click "${CLUSTER}" → Preview Provisioning Plan (only reads the hosts), then Provision etcd:`,
    `     etcd with mutual TLS under systemd on every host, uploaded from ${LAB_ETCD_BIN}/.`,
    '  4. F1 → "K3s etcd: Open etcd Health": health, status, members and the performance check.',
    '  5. F1 → "Welcome: Open Walkthrough..." → "Move K3s from SQLite to etcd" (its K3s steps need',
    '     K3s on the hosts, which the lab does not install).',
    '',
    'Stop it: npm run lab -- --down   (the workspace stays)',
    '',
  ];
  console.log(lines.join('\n'));
}

function maybeOpenBrowser(opts: LabOptions, url: string): void {
  if (opts.noBrowser) return;
  const desktop = process.env['DISPLAY'] ?? process.env['WAYLAND_DISPLAY'];
  if (!desktop) return;
  if (spawnSync('sh', ['-c', 'command -v xdg-open'], { stdio: 'ignore' }).status !== 0) return;
  const child = spawn('xdg-open', [url], { detached: true, stdio: 'ignore' });
  child.once('error', () => undefined);
  child.unref();
  say(`opened ${url} with xdg-open`);
}

/** Starts the keeper and relays its progress; resolves with the running lab's state. */
async function startKeeper(cfg: KeeperConfig): Promise<LabState> {
  const configFile = join(cfg.stateDir, 'keeper.json');
  await writeFile(configFile, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  chmodSync(configFile, 0o600);
  const logFd = openSync(cfg.log, 'w', 0o600);
  chmodSync(cfg.log, 0o600); // an old log may have been made wider
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', logFd, logFd];
  stdio[REPORT_FD] = 'pipe';
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO, 'scripts', 'lab.ts'), '--keeper', configFile],
    { cwd: REPO, detached: true, stdio },
  );
  closeSync(logFd);
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the lab keeper');
  const keeperGone = () => child.exitCode !== null || child.signalCode !== null;

  // Ctrl+C while starting: the keeper stops what it has started (it is in its own session, so
  // the terminal's SIGINT does not reach it).
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    say(
      'interrupted: the keeper stops what it started (see npm run lab -- --down if anything is left)',
    );
    try {
      process.kill(pid, 'SIGUSR2');
    } catch {
      // gone
    }
  };
  process.prependListener('SIGINT', interrupt);

  const pipe = child.stdio[REPORT_FD];
  if (!pipe || !('on' in pipe)) throw new Error('no report pipe from the keeper');
  let ready: LabState | undefined;
  let error: string | undefined;
  const lines = createInterface({ input: pipe as NodeJS.ReadableStream });
  for await (const line of lines) {
    let msg: KeeperMessage;
    try {
      msg = JSON.parse(line) as KeeperMessage;
    } catch {
      continue;
    }
    if (msg.type === 'progress') say(msg.text);
    else if (msg.type === 'ready') ready = msg.state;
    else error = msg.text;
  }
  if (ready) {
    child.unref();
    (pipe as { destroy?: () => void }).destroy?.();
    process.removeListener('SIGINT', interrupt);
    return ready;
  }
  // No "ready": the keeper failed or was interrupted; it cleans up and exits.
  await waitFor(keeperGone, 120_000);
  if (interrupted) process.exit(130);
  const tail = (() => {
    try {
      return readFileSync(cfg.log, 'utf8').trimEnd().split('\n').slice(-25).join('\n');
    } catch {
      return '';
    }
  })();
  throw new Error(
    `the lab did not come up: ${error ?? `its keeper exited (${child.exitCode ?? child.signalCode})`}\n` +
      `--- last lines of ${cfg.log} ---\n${tail}`,
  );
}

async function up(opts: LabOptions): Promise<number> {
  const t0 = Date.now();
  const existing = readState(opts.stateDir);
  if (existing) {
    const dead = deadParts(existing);
    if (dead.length === 0) {
      printAlreadyRunning(existing);
      return 0;
    }
    say(
      `the lab recorded in ${opts.stateDir} is not fully running (${dead.join('; ')}): clearing what is left of it`,
    );
    const r = await teardown(existing, say);
    if (r.swept.length > 0) say(`removed: ${r.swept.join(', ')}`);
    if (r.leftovers.length > 0) {
      throw new Error(`could not clear the old lab: still there: ${r.leftovers.join(', ')}`);
    }
  }

  // Ports: a clear message now rather than a failure deep inside.
  if (await listening('127.0.0.1', opts.port)) {
    throw new Error(
      `127.0.0.1:${opts.port} is already taken by another program: choose another port with --port`,
    );
  }
  for (const a of opts.addresses) {
    for (const p of [22, 2379, 2380]) {
      if (await listening(a, p)) {
        throw new Error(
          `${a}:${p} is already in use (another lab with another --state, or a test's hosts?): ` +
            'choose other addresses with --addresses',
        );
      }
    }
  }

  if (!opts.noBuild) {
    await step('system packages (installs only what is missing)', 'bash', [
      'scripts/install-system-deps.sh',
    ]);
    await step(
      `building and packaging the extension (npm run package → ${VSIX})`,
      'npm',
      ['run', '--silent', 'package'],
      true,
    );
    await step(
      'development build back in dist/ (npm run build)',
      'npm',
      ['run', '--silent', 'build'],
      true,
    );
  }
  // Now systemd-nspawn must really be there (the packages step installs it on Debian).
  const reasons = labPreflight({ ...machineFacts(), canInstallNspawn: false });
  if (reasons.length > 0) {
    process.stderr.write(refusalText(reasons, { vsix: VSIX }));
    return 2;
  }
  const vsix = join(REPO, VSIX);
  if (!existsSync(vsix)) {
    throw new Error(`${vsix} is missing: run npm run package first, or drop --no-build`);
  }

  say(
    'the real VS Code (the one inside the code-server npm package, cached under ~/.cache/k3s-etcd)',
  );
  const setup = spawnSync('bash', [join(REPO, 'scripts', 'setup-vscode.sh')], {
    cwd: REPO,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 30 * 60_000,
  });
  const vscodeDir = setup.stdout.trimEnd().split('\n').pop()?.trim() ?? '';
  if (setup.status !== 0 || !existsSync(join(vscodeDir, 'out', 'server-main.js'))) {
    throw new Error(`scripts/setup-vscode.sh failed (${setup.status ?? setup.signal})`);
  }
  say("the edge hosts' Debian root file system (debootstrap once, cached under ~/.cache/k3s-etcd)");
  await ensureRootfs();

  const workspace = join(opts.stateDir, 'workspace');
  say(`the lab workspace ${workspace}`);
  const publicKey = await prepareWorkspace(opts, workspace);
  const serverDataDir = join(opts.stateDir, 'server');
  const userDataDir = join(opts.stateDir, 'user');
  const extensionsDir = join(serverDataDir, 'extensions');
  await mkdir(extensionsDir, { recursive: true });
  await writeSettings(userDataDir);
  if (!opts.remote) {
    say(`installing ${VSIX} into the lab's VS Code`);
    installVsix(vscodeDir, vsix, serverDataDir, extensionsDir);
  }
  const connectionTokenFile = join(opts.stateDir, CONNECTION_TOKEN_FILE);
  const token = ensureConnectionTokenFile(connectionTokenFile);

  const state = await startKeeper({
    stateDir: opts.stateDir,
    workspace,
    port: opts.port,
    url: labUrl(opts.port, workspace, token),
    connectionTokenFile,
    hosts: hostNames(opts.addresses),
    key: join(workspace, KEY_NAME),
    publicKey,
    knownHosts: join(workspace, LAB_KNOWN_HOSTS),
    vscodeDir,
    serverDataDir,
    userDataDir,
    extensionsDir,
    log: join(opts.stateDir, 'lab.log'),
    vscodeLog: join(opts.stateDir, 'vscode.log'),
    ...(opts.remote ? { remote: { host: opts.remote, vsix } } : {}),
  });
  printSummary(state, Date.now() - t0);
  maybeOpenBrowser(opts, state.url);
  return 0;
}

// ---- down -----------------------------------------------------------------------------------

async function down(opts: LabOptions): Promise<number> {
  const t0 = Date.now();
  const state = readState(opts.stateDir);
  if (!state) {
    console.log(`No lab is recorded in ${opts.stateDir} (no lab.json): nothing to stop.`);
    return 0;
  }
  say(
    `stopping the lab: VS Code on 127.0.0.1:${state.port}, hosts ${state.hosts.map((h) => `${h.name} ${h.address}`).join(', ') || '(none up yet)'}`,
  );
  const r = await teardown(state, say);
  if (r.swept.length > 0) say(`also removed what was left: ${r.swept.join(', ')}`);
  if (r.leftovers.length > 0) {
    console.error(`The lab is not completely down; still there: ${r.leftovers.join(', ')}`);
    return 1;
  }
  const how = r.keeper === 'stopped' && r.swept.length === 0 ? 'powered off' : 'stopped (killed)';
  console.log(
    `The lab is down (in ${seconds(Date.now() - t0)}): VS Code stopped, the hosts ${how} and ` +
      `removed, ports free. The workspace stays: ${state.workspace}`,
  );
  return 0;
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: LabOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`lab: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.keeper !== undefined) {
    return runKeeper(JSON.parse(await readFile(opts.keeper, 'utf8')) as KeeperConfig);
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  const facts = machineFacts();
  if (opts.noBuild || opts.down) facts.canInstallNspawn = false;
  const reasons = labPreflight(facts);
  if (reasons.length > 0) {
    process.stderr.write(refusalText(reasons, { vsix: VSIX }));
    return 2;
  }
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
  // The lab's secrets live here (connection token, SSH key, the URL in lab.json): ours alone.
  chmodSync(opts.stateDir, 0o700);
  const release = takeLock(opts.stateDir);
  try {
    return opts.down ? await down(opts) : await up(opts);
  } finally {
    release();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`lab: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
