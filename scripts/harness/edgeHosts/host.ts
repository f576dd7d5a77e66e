/**
 * One edge host's life: its root made and configured, systemd-nspawn in its own cgroups, the
 * boot awaited (systemd, users, sshd's banner), `exec`, `changeAddress` and `stop`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  killGroup,
  makeTempDir,
  removeTempDir,
  sleep,
  trackGroup,
  untrackGroup,
} from '../processes';
import {
  CONTAINER_ENV,
  fileTail,
  mountsUnder,
  NSENTER,
  onExitSync,
  run,
  shq,
  sleepSync,
  tail,
  unmountAllSync,
} from './exec';
import { attachToBridge, deleteLinkSync, IP, linkExists, sshBanner } from './network';
import {
  cgroupParents,
  cgroupPids,
  findLeader,
  killCgroupsSync,
  killPid,
  removeCgroupsSync,
  removeParentCgroupsSync,
  sameProcess,
} from './processes';
import { makeRoot } from './rootfs';
import { configureRoot, hostsFile, usersScript, type HostConfig } from './setup';
import type { EdgeHost, ExecOptions, ExecResult } from './types';

export const usedAddresses = new Set<string>(); // held by this process's running hosts

/**
 * The known_hosts line for the host's ed25519 host key: `<address> ssh-ed25519 AAAA...`, for the
 * host's current address (after `changeAddress()`, the new one) or for `address` when given.
 */
export async function hostKeyLine(
  host: Pick<EdgeHost, 'address' | 'root'>,
  address: string = host.address,
): Promise<string> {
  const pub = await readFile(join(host.root, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8');
  const [type, key] = pub.trim().split(/\s+/);
  if (type !== 'ssh-ed25519' || !key)
    throw new Error(`unexpected host key in ${host.root}: ${pub}`);
  return `${address} ${type} ${key}`;
}

export async function startHost(cfg: HostConfig): Promise<EdgeHost> {
  const { name } = cfg.spec;
  const { bridge } = cfg;
  let address = cfg.address; // changeAddress() moves it
  let veth: string | undefined; // bridge mode: the host side of the veth pair, once known
  const machine = `k3se-${cfg.runId}-${name}`;
  const dir = await makeTempDir(`k3se-${process.pid}-${name}-`);
  const logFile = join(dir, 'nspawn.log');
  const cgroups = cgroupParents().map((p) => join(p, `${process.pid}-${machine}`));
  const root = join(dir, 'root'); // the overlay's merged dir or the copy (see makeRoot)
  let mode: 'overlay' | 'copy' = 'copy';
  let child: ChildProcess | undefined;
  let leader: { pid: number; startTime: string } | undefined;
  const nspawnAlive = () =>
    child !== undefined && child.exitCode === null && child.signalCode === null;
  const leaderAlive = () => leader !== undefined && sameProcess(leader.pid, leader.startTime);

  // Process-exit fallback: kill everything of this host, detach its overlay (./processes then
  // kills nspawn's group again and removes the dir).
  const removeExitHook = onExitSync(() => {
    killCgroupsSync(cgroups);
    if (leader && leaderAlive()) killPid(leader.pid);
    if (child?.pid !== undefined && nspawnAlive()) killGroup(child.pid, 'SIGKILL');
    for (let i = 0; i < 30 && cgroups.some((d) => cgroupPids(d).length > 0); i++) sleepSync(100);
    unmountAllSync(dir); // by the mount table, not by a flag a signal may have raced
    removeCgroupsSync(cgroups);
    removeParentCgroupsSync(cgroups);
    // Goes with the container's network namespace; the bridge's own hook deletes any port left.
    if (veth) deleteLinkSync(veth);
  });

  const exec = (command: string, opts: ExecOptions = {}): Promise<ExecResult> => {
    if (!leader || !leaderAlive()) {
      return Promise.resolve({ code: 255, stdout: '', stderr: `edge host ${name} is not running` });
    }
    return run(NSENTER, ['-t', String(leader.pid), '-a', '/bin/sh', '-c', command], {
      env: CONTAINER_ENV,
      timeoutMs: opts.timeoutMs ?? 60_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  };

  let stopping: Promise<void> | undefined;
  let stoppedBy: 'poweroff' | 'kill' | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (nspawnAlive()) {
        // A booted host gets 30 s to shut down; one that is not up (or whose systemctl failed)
        // gets SIGTERM, which nspawn turns into SIGRTMIN+3 (poweroff) for its systemd, and 5 s.
        let graceMs = 5_000;
        const off = leaderAlive()
          ? await exec('systemctl poweroff', { timeoutMs: 10_000 })
          : undefined;
        if (off?.code === 0) graceMs = 30_000;
        else if (child?.pid !== undefined) killGroup(child.pid, 'SIGTERM');
        for (const end = Date.now() + graceMs; nspawnAlive() && Date.now() < end;) await sleep(100);
      }
      const leftovers = () =>
        nspawnAlive() || leaderAlive() || cgroups.some((d) => cgroupPids(d).length > 0);
      const clean = !leftovers() && child?.signalCode == null && (child?.exitCode ?? 0) === 0;
      stoppedBy = clean ? 'poweroff' : 'kill';
      if (leftovers()) {
        killCgroupsSync(cgroups);
        if (leader && leaderAlive()) killPid(leader.pid);
        if (child?.pid !== undefined && nspawnAlive()) killGroup(child.pid, 'SIGKILL');
        for (const end = Date.now() + 10_000; leftovers() && Date.now() < end;) await sleep(100);
      }
      if (child?.pid !== undefined) untrackGroup(child.pid);
      if (mountsUnder(dir).length > 0) {
        let r = await run('umount', [root]);
        for (let i = 0; r.code !== 0 && i < 20 && mountsUnder(root).length > 0; i++) {
          await sleep(100);
          r = await run('umount', [root]);
        }
        unmountAllSync(dir);
      }
      removeCgroupsSync(cgroups);
      // The veth goes with the container's network namespace (the kernel frees that a moment
      // after its last process); delete it here so nothing is left whatever the timing.
      if (veth) {
        for (const end = Date.now() + 5_000; linkExists(veth) && Date.now() < end; await sleep(100))
          await run(IP, ['link', 'del', 'dev', veth]);
      }
      removeExitHook();
      await removeTempDir(dir);
      removeParentCgroupsSync(cgroups);
      usedAddresses.delete(address);
      await bridge?.release(machine);
    })());

  const changeAddress = async (newAddress: string): Promise<void> => {
    if (!bridge) throw new Error(`edge host ${name}: changeAddress needs network 'bridge'`);
    if (!leader || !leaderAlive()) throw new Error(`edge host ${name} is not running`);
    if (!bridge.contains(newAddress)) {
      throw new Error(`${newAddress} is not a host address in ${bridge.name}'s ${bridge.subnet}`);
    }
    if (newAddress === address) return;
    if (usedAddresses.has(newAddress))
      throw new Error(`${newAddress} is already used by a running host`);
    const old = address;
    usedAddresses.add(newAddress);
    try {
      // Old one first: deleting an interface's primary address would take secondaries with it.
      const r = await run(NSENTER, [
        '-t',
        String(leader.pid),
        '-n',
        '/bin/sh',
        '-c',
        `set -e; ip addr del ${old}/24 dev host0; ip addr add ${newAddress}/24 dev host0`,
      ]);
      if (r.code !== 0) {
        throw new Error(
          `edge host ${name}: moving ${old} -> ${newAddress} failed (${r.code}): ${r.stderr.trim()}`,
        );
      }
    } catch (err) {
      usedAddresses.delete(newAddress);
      throw err;
    }
    address = newAddress;
    usedAddresses.delete(old);
    // This machine forgets the old address's MAC: the next packet to it asks ARP, unanswered.
    await run(IP, ['neigh', 'flush', 'to', old, 'dev', bridge.name]);
    await writeFile(join(root, 'etc/hosts'), hostsFile(name, newAddress));
    let last = '';
    for (const end = Date.now() + 10_000; ; await sleep(100)) {
      try {
        if ((await sshBanner(newAddress, 2_000)).startsWith('SSH-')) return;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > end) {
        throw new Error(`edge host ${name}: sshd does not answer on ${newAddress}:22: ${last}`);
      }
    }
  };

  try {
    const t0 = Date.now();
    const made = await makeRoot(cfg.rootfs, dir, cfg.rootMode);
    mode = made.mode;
    const rootMs = Date.now() - t0;
    await configureRoot(root, cfg);

    for (const d of cgroups) mkdirSync(d, { recursive: true });
    // Move into the host's own cgroups, then become systemd-nspawn (same pid, own group).
    const enter = cgroups.map((d) => `echo $$ > ${shq(join(d, 'cgroup.procs'))}`).join(' && ');
    const nspawnArgs = [
      '-D',
      root,
      '--register=no',
      '--keep-unit',
      '-b',
      '--console=passive',
      '-M',
      machine,
      `--hostname=${name}`,
      '--link-journal=no',
      // Own network namespace, a veth pair: host0 inside, vb-... here enslaved to the bridge.
      ...(bridge ? [`--network-bridge=${bridge.name}`] : []),
      ...(cfg.spec.bindReadOnly ?? []).map((b) => {
        if (![b.source, b.target].every((p) => p.startsWith('/') && !p.includes(':')))
          throw new Error(`bindReadOnly ${b.source} -> ${b.target}: absolute paths without ':'`);
        return `--bind-ro=${b.source}:${b.target}`;
      }),
    ];
    const t1 = Date.now();
    const fd = openSync(logFile, 'a');
    child = spawn(
      '/bin/sh',
      ['-c', `${enter ? `${enter} && ` : ''}exec systemd-nspawn "$@"`, 'sh', ...nspawnArgs],
      { detached: true, stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    const c = child;
    c.once('error', () => undefined); // no pid then: reported just below
    if (c.pid === undefined) throw new Error('could not spawn systemd-nspawn');
    c.unref(); // a forgotten host must not keep the test process alive; the exit hook kills it
    trackGroup(c.pid, () => c.exitCode === null && c.signalCode === null);
    const nspawnPid = c.pid;

    const failEarly = (what: string) => {
      if (!nspawnAlive()) {
        throw new Error(
          `edge host ${name}: systemd-nspawn exited (${c.exitCode ?? c.signalCode}) ${what}\n` +
            `--- ${logFile} ---\n${fileTail(logFile, 40)}`,
        );
      }
    };
    const notUp = async (what: string) => {
      const journal = leaderAlive()
        ? await exec('journalctl -b --no-pager -n 40 -o short-monotonic', { timeoutMs: 5_000 })
        : undefined;
      return new Error(
        `edge host ${name} (${address}) not up within the deadline: ${what}\n` +
          `--- journal ---\n${journal ? tail(journal.stdout || journal.stderr, 40) : '(no journal)'}\n` +
          `--- ${logFile} ---\n${fileTail(logFile, 20)}`,
      );
    };

    // 1. the container's systemd
    while (!leader) {
      failEarly('before its systemd started');
      leader = findLeader(nspawnPid);
      if (leader) break;
      if (Date.now() > cfg.deadline) throw await notUp('no systemd process under nspawn');
      await sleep(50);
    }
    const leaderPid = leader.pid;
    if (bridge) veth = await attachToBridge(leaderPid, address, cfg.deadline);

    // 2. systemd finished booting
    let state = '';
    for (;;) {
      failEarly(`while booting (last state "${state}")`);
      const r = await exec('systemctl is-system-running', { timeoutMs: 5_000 });
      state = r.stdout.trim() || r.stderr.trim();
      if (state === 'running' || state === 'degraded') break;
      if (state === 'maintenance' || state === 'stopping') throw await notUp(`systemd is ${state}`);
      if (Date.now() > cfg.deadline) throw await notUp(`systemd is "${state}"`);
      await sleep(200);
    }

    // 3. users and sudo
    const t2 = Date.now();
    const users = usersScript(cfg);
    const u = await exec(users.script, { input: users.input, timeoutMs: 30_000 });
    if (u.code !== 0)
      throw new Error(`edge host ${name}: creating users failed (${u.code}):\n${u.stderr}`);
    const setupMs = Date.now() - t2;

    // 4. sshd answers on the host's own address
    let sshErr = '';
    for (;;) {
      failEarly('while waiting for sshd');
      try {
        const banner = await sshBanner(address, 2_000);
        if (banner.startsWith('SSH-')) break;
        sshErr = `unexpected banner ${JSON.stringify(banner)}`;
      } catch (err) {
        sshErr = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > cfg.deadline) {
        const ssh = await exec('systemctl status --no-pager ssh', { timeoutMs: 5_000 });
        throw await notUp(`sshd on ${address}:22: ${sshErr}\n${ssh.stdout}`);
      }
      await sleep(100);
    }
    const bootMs = Date.now() - t1;

    const failed = await exec('systemctl --failed --no-legend --plain', { timeoutMs: 5_000 });
    const failedUnits = failed.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((x) => x !== '');
    if (failedUnits.length > 0) {
      console.error(`[edgeHosts] ${name} is ${state}; failed units: ${failedUnits.join(', ')}`);
    }
    return {
      name,
      get address() {
        return address;
      },
      network: bridge ? 'bridge' : 'shared',
      bridge,
      veth,
      machine,
      root,
      leaderPid,
      nspawnPid,
      rootMode: mode,
      systemState: state,
      failedUnits,
      timings: { rootMs, bootMs, setupMs },
      logFile,
      dir,
      get stoppedBy() {
        return stoppedBy;
      },
      exec,
      changeAddress,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
