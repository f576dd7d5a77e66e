/**
 * The lab's keeper: the detached process (its own session; output in `<state>/lab.log`) that
 * owns the lab's edge hosts and its VS Code server, so that `npm run lab` can return while they
 * keep running. scripts/harness/edgeHosts ties hosts to the life of the process that started them
 * (its exit hooks kill them), which is exactly right here: the keeper's life is the lab's.
 *
 * It boots the hosts (startEdgeHosts), writes their host keys to the workspace's known_hosts,
 * starts VS Code (`out/server-main.js` on 127.0.0.1:PORT with the connection token file, own
 * process group; its log, which prints the token, is 0600), records everything
 * in `<state>/lab.json` and reports progress, then "ready" or an error, as JSON lines on fd 3 (a
 * pipe to the `lab` command, closed once ready). Then it waits.
 *
 * SIGUSR2 (sent by `lab --down`) stops the lab cleanly: VS Code's process group gets SIGTERM
 * (SIGKILL after 5 s), the hosts power off (edgeHosts' stop: poweroff, deadline, SIGKILL of their
 * cgroups, unmount, remove), the state file goes, and the keeper exits 0. SIGTERM, SIGINT or a
 * crash still take everything with them through the exit hooks of edgeHosts and processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeKnownHosts } from '../harness/lab';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts, type EdgeHost } from '../harness/edgeHosts';
import { httpStatus } from '../harness/net';
import { REMOTE_USER, REMOTE_WORKSPACE, remoteBinds, startRemoteVsCode } from './remote';
import { groupAlive, killGroup, trackGroup, untrackGroup } from '../harness/processes';
import {
  hostCgroups,
  procRef,
  readState,
  removeState,
  waitFor,
  writeState,
  type LabHostRecord,
  type LabState,
} from './state';

/** What the `lab` command hands the keeper (as a JSON file). */
export interface KeeperConfig {
  stateDir: string;
  workspace: string;
  port: number;
  /** The workbench URL, with the connection token. */
  url: string;
  /** The 0600 file holding VS Code's connection token. */
  connectionTokenFile: string;
  hosts: { name: string; address: string }[];
  /** The lab key's private file and its public line (put in the hosts' authorized_keys). */
  key: string;
  publicKey: string;
  knownHosts: string;
  vscodeDir: string;
  serverDataDir: string;
  userDataDir: string;
  extensionsDir: string;
  log: string;
  vscodeLog: string;
  /** `--remote`: VS Code runs on this host (with this VSIX), not here (scripts/lab/remote.ts). */
  remote?: { host: string; vsix: string };
}

export type KeeperMessage =
  | { type: 'progress'; text: string }
  | { type: 'ready'; state: LabState }
  | { type: 'error'; text: string };

/** The file descriptor the keeper reports on (the `lab` command's pipe). */
export const REPORT_FD = 3;

class Stopped extends Error {}

const stamp = () => new Date().toISOString();
const log = (text: string) => console.log(`${stamp()} [keeper] ${text}`);

function report(msg: KeeperMessage): void {
  try {
    writeSync(REPORT_FD, `${JSON.stringify(msg)}\n`);
  } catch {
    // the lab command is gone (it was interrupted): the log still has it
  }
}

function startVsCode(cfg: KeeperConfig): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // A VS Code that thinks it is under test or inside another VS Code's terminal misbehaves.
  for (const k of Object.keys(env)) if (/^(VSCODE_|ELECTRON_RUN_AS_NODE$)/.test(k)) delete env[k];
  const args = [
    join(cfg.vscodeDir, 'out', 'server-main.js'),
    '--host',
    '127.0.0.1',
    '--port',
    String(cfg.port),
    '--connection-token-file',
    cfg.connectionTokenFile,
    '--accept-server-license-terms',
    '--server-data-dir',
    cfg.serverDataDir,
    '--user-data-dir',
    cfg.userDataDir,
    '--extensions-dir',
    cfg.extensionsDir,
    '--default-folder',
    cfg.workspace,
    '--disable-telemetry',
  ];
  const fd = openSync(cfg.vscodeLog, 'w', 0o600); // VS Code prints its URL with the token
  chmodSync(cfg.vscodeLog, 0o600);
  const child = spawn(process.execPath, args, {
    detached: true, // its own process group: server, extension hosts, pty host
    stdio: ['ignore', fd, fd],
    env,
    cwd: cfg.stateDir,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start VS Code (${args.join(' ')})`);
  trackGroup(child.pid); // killed with the keeper whatever ends it
  return child;
}

async function stopVsCode(child: ChildProcess | undefined): Promise<void> {
  const pid = child?.pid;
  if (pid === undefined) return;
  if (groupAlive(pid)) {
    killGroup(pid, 'SIGTERM');
    if (!(await waitFor(() => !groupAlive(pid), 5_000))) {
      killGroup(pid, 'SIGKILL');
      await waitFor(() => !groupAlive(pid), 5_000);
    }
  }
  untrackGroup(pid);
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Runs the keeper until it is told to stop; resolves with its exit code. */
export async function runKeeper(cfg: KeeperConfig): Promise<number> {
  let stopRequested = false;
  let wake: (() => void) | undefined;
  process.on('SIGUSR2', () => {
    log('stop requested (SIGUSR2)');
    stopRequested = true;
    wake?.();
  });
  const checkStop = () => {
    if (stopRequested) throw new Stopped('stopped while starting');
  };

  const t0 = Date.now();
  const base: LabState = {
    version: 1,
    status: 'starting',
    stateDir: cfg.stateDir,
    workspace: cfg.workspace,
    url: cfg.url,
    port: cfg.port,
    addresses: cfg.hosts.map((h) => h.address),
    keeper: procRef(process.pid),
    hosts: [],
    key: cfg.key,
    knownHosts: cfg.knownHosts,
    log: cfg.log,
    vscodeLog: cfg.vscodeLog,
    startedAt: new Date(t0).toISOString(),
  };
  writeState(base);
  log(`keeper ${process.pid} starting the lab in ${cfg.stateDir}`);

  let hosts: EdgeHost[] = [];
  let vscode: ChildProcess | undefined;
  let code = 0;
  try {
    report({
      type: 'progress',
      text: `booting ${cfg.hosts.length} edge hosts (Debian 12 with systemd and sshd in systemd-nspawn): ${cfg.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}`,
    });
    const binds = cfg.remote ? await remoteBinds(cfg.remote.vsix) : [];
    hosts = await startEdgeHosts({
      hosts: cfg.hosts.map((h) =>
        h.name === cfg.remote?.host ? { ...h, bindReadOnly: binds } : h,
      ),
      authorizedKeys: [cfg.publicKey],
      bootTimeoutMs: 120_000,
    });
    const hostsMs = Date.now() - t0;
    for (const h of hosts) {
      log(
        `${h.name} up: ${h.address}, machine ${h.machine}, root ${h.rootMode} (${h.timings.rootMs} ms), ` +
          `boot ${h.timings.bootMs} ms, systemd ${h.systemState}`,
      );
    }
    const records: LabHostRecord[] = hosts.map((h) => ({
      name: h.name,
      address: h.address,
      machine: h.machine,
      nspawn: procRef(h.nspawnPid),
      leader: procRef(h.leaderPid),
      dir: h.dir,
      rootMode: h.rootMode,
      cgroups: hostCgroups(h.nspawnPid),
    }));
    writeState({ ...base, hosts: records });
    report({ type: 'progress', text: `hosts up in ${(hostsMs / 1000).toFixed(1)} s` });
    checkStop();
    await writeKnownHosts(cfg.workspace, await Promise.all(hosts.map((h) => hostKeyLine(h))));

    const t1 = Date.now();
    const remoteHost = hosts.find((h) => h.name === cfg.remote?.host);
    if (remoteHost) {
      report({
        type: 'progress',
        text: `starting VS Code ON ${remoteHost.name} (${remoteHost.address}:${cfg.port}, as ${REMOTE_USER}, workspace ${REMOTE_WORKSPACE})`,
      });
      const remote = await startRemoteVsCode(remoteHost, {
        workspace: cfg.workspace,
        key: cfg.key,
        knownHosts: cfg.knownHosts,
        port: cfg.port,
      });
      const state: LabState = {
        ...base,
        status: 'running',
        url: remote.workbenchUrl({ folder: REMOTE_WORKSPACE }),
        remote: { host: remoteHost.name, workspace: REMOTE_WORKSPACE, user: REMOTE_USER },
        hosts: records,
        upMs: Date.now() - t0,
      };
      writeState(state);
      log(`VS Code up on ${remoteHost.name} in ${Date.now() - t1} ms (unit ${remote.unit})`);
      report({ type: 'ready', state });
      try {
        closeSync(REPORT_FD);
      } catch {
        // already closed
      }
      // Nothing of VS Code runs in this process now: a timer keeps the keeper (and so the
      // hosts it owns) alive until it is told to stop.
      const keepAlive = setInterval(() => undefined, 1 << 30);
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (stopRequested) resolve();
      });
      clearInterval(keepAlive);
      return code;
    }
    report({ type: 'progress', text: `starting VS Code on 127.0.0.1:${cfg.port}` });
    const child = startVsCode(cfg);
    vscode = child;
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    let ready = false;
    for (const end = Date.now() + 90_000; !ready && !exited() && Date.now() < end;) {
      checkStop();
      // With the token the workbench answers with a redirect that keeps it in a cookie.
      ready = (await httpStatus(cfg.url, 2_000)) === 302;
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    if (!ready) {
      throw new Error(
        `VS Code ${exited() ? `exited (${child.exitCode ?? child.signalCode})` : 'did not answer within 90 s'} ` +
          `on 127.0.0.1:${cfg.port}; last lines of ${cfg.vscodeLog}:\n${tail(cfg.vscodeLog, 30)}`,
      );
    }
    checkStop();
    const state: LabState = {
      ...base,
      status: 'running',
      vscode: procRef(child.pid ?? 0),
      hosts: records,
      upMs: Date.now() - t0,
    };
    writeState(state);
    log(
      `VS Code up in ${Date.now() - t1} ms; the lab is running on 127.0.0.1:${cfg.port} (connection token in ${cfg.connectionTokenFile})`,
    );
    report({ type: 'ready', state });
    try {
      closeSync(REPORT_FD);
    } catch {
      // already closed
    }
    child.once('exit', (c, s) => {
      if (!stopRequested) {
        log(`VS Code exited (${c ?? s}); the next \`npm run lab\` notices and starts a fresh lab`);
      }
    });
    await new Promise<void>((resolve) => {
      wake = resolve;
      if (stopRequested) resolve();
    });
  } catch (err) {
    if (err instanceof Stopped) {
      log(err.message);
    } else {
      code = 1;
      const text = err instanceof Error ? err.message : String(err);
      log(`failed: ${err instanceof Error ? (err.stack ?? text) : text}`);
      report({ type: 'error', text });
    }
  } finally {
    log('stopping VS Code');
    await stopVsCode(vscode);
    log(`stopping ${hosts.length} hosts`);
    await stopEdgeHosts(hosts);
    for (const h of hosts) log(`${h.name} stopped by ${h.stoppedBy ?? '?'}`);
    // The state file is this keeper's unless a newer lab has replaced it meanwhile.
    if (readState(cfg.stateDir)?.keeper.pid === process.pid) removeState(cfg.stateDir);
    log(`keeper done (exit ${code})`);
  }
  return code;
}
