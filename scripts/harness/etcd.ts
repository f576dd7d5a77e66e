/**
 * Integration-test harness: starts a REAL etcd cluster (Debian's /usr/bin/etcd 3.4) on loopback
 * aliases 127.0.1.x, waits until every member answers `etcdctl endpoint health`, and always tears
 * it down: `stop()` kills each process group and removes the temp dir, and one process-level
 * exit/SIGINT/SIGTERM hook SIGKILLs whatever a crashed test left running.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  killGroup,
  makeTempDir,
  removeTempDir,
  sleep,
  trackGroup,
  untrackGroup,
} from './processes';

const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';

export interface EtcdTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
  peerCertFile: string;
  peerKeyFile: string;
}
export interface EtcdctlTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}
export interface EtcdClusterOptions {
  members?: 1 | 3 | 5; // default 3
  /**
   * When set, serve mutual TLS on client and peer ports (--client-cert-auth,
   * --peer-client-cert-auth, trusted CA files); certFile/keyFile double as etcdctl's client
   * cert, so give them ClientAuth too. The certificates need IP SANs `address` (127.0.1.x) AND
   * 127.0.0.1: etcd checks a client/peer cert's IP SANs against the connection's source address,
   * and loopback connections to 127.0.1.x come from 127.0.0.1.
   */
  tls?: (
    memberName: string,
    index: number,
    address: string,
  ) => EtcdTlsFiles | Promise<EtcdTlsFiles>;
  names?: string[]; // default etcd-1 .. etcd-N
  extraArgs?: string[];
  /** More arguments for one member, e.g. a --listen-metrics-urls on its own address. */
  memberArgs?: (m: EtcdMemberProc) => string[] | Promise<string[]>;
  /**
   * A second loopback IP a member also serves clients on (same port), e.g. to reach it by an
   * address its certificate does not name.
   */
  extraClientIp?: (address: string, index: number) => string | undefined;
  /** Every member on the same client port and the same peer port (as an inventory describes them). */
  samePorts?: boolean;
  /** ETCD_* variables for every member (what an env file would give it). */
  env?: Record<string, string>;
  startTimeoutMs?: number; // default 30000
}
export interface EtcdMemberProc {
  name: string;
  address: string;
  clientPort: number;
  peerPort: number;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  pid: number;
  logFile: string;
  tls?: EtcdTlsFiles;
  /** Set when `extraClientIp` gave this member a second client address. */
  extraClientUrl?: string;
}
export interface EtcdCluster {
  members: EtcdMemberProc[];
  endpoints: string[];
  dir: string;
  stopMember(name: string): Promise<void>;
  /** Starts a stopped member again with its data, and waits until it is healthy. */
  startMember(name: string): Promise<void>;
  stop(): Promise<void>;
}
export interface EtcdctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Process groups and temp dirs are tracked (and killed/removed on exit) by ./processes.
const usedAddresses = new Set<string>(); // loopback addresses held by this process's clusters

/** SIGTERM the group, wait up to `graceMs` for the exit, then SIGKILL and wait for the reap. */
async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  // Poll instead of awaiting 'exit': the child is unref'd, and a timer keeps the loop alive.
  const waitExit = async (ms: number) => {
    for (const end = Date.now() + ms; !exited() && Date.now() < end;) await sleep(50);
  };
  if (!exited()) {
    killGroup(pid, 'SIGTERM');
    await waitExit(graceMs);
  }
  if (!exited()) {
    killGroup(pid, 'SIGKILL');
    await waitExit(5_000);
  }
  untrackGroup(pid);
}

// ---- addresses and ports --------------------------------------------------------------------
function pickAddresses(n: number): string[] {
  const out: string[] = [];
  while (out.length < n) {
    const addr = `127.0.1.${100 + ((randomBytes(1)[0] ?? 0) % 151)}`; // 127.0.1.100-250
    if (!usedAddresses.has(addr) && !out.includes(addr)) out.push(addr);
  }
  for (const a of out) usedAddresses.add(a);
  return out;
}
/** Two distinct free ports on exactly `address` (both held open while choosing). */
async function freePorts(address: string): Promise<[number, number]> {
  const servers = [createServer(), createServer()];
  const ports = await Promise.all(
    servers.map(
      (s) =>
        new Promise<number>((resolve, reject) => {
          s.once('error', reject);
          s.listen(0, address, () => {
            const a = s.address();
            if (a === null || typeof a === 'string') reject(new Error('no port'));
            else resolve(a.port);
          });
        }),
    ),
  );
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return [ports[0] ?? 0, ports[1] ?? 0];
}

/** Whether `port` can be bound on `address` right now. */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, address, () => srv.close(() => resolve(true)));
  });
}

/** One client port and one peer port free on every address (an inventory has one pair per cluster). */
async function sharedFreePorts(addresses: string[]): Promise<[number, number]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const [client, peer] = await freePorts(addresses[0] ?? '127.0.0.1');
    const ok = await Promise.all(
      addresses.slice(1).flatMap((a) => [portFree(a, client), portFree(a, peer)]),
    );
    if (ok.every(Boolean)) return [client, peer];
  }
  throw new Error(`no port pair free on all of ${addresses.join(', ')}`);
}

// ---- etcdctl --------------------------------------------------------------------------------
/** The environment without ETCD*_ settings and proxies, which would change etcd's behaviour. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(ETCD|https?_proxy$|grpc_proxy$)/i.test(k)) env[k] = v;
  }
  return env;
}
function run(cmd: string, args: string[], timeoutMs: number): Promise<EtcdctlResult> {
  const env = { ...cleanEnv(), ETCDCTL_API: '3' };
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) =>
      resolve({
        code: code ?? 128,
        stdout,
        stderr: signal ? `${stderr}killed by ${signal}` : stderr,
      }),
    );
  });
}
/** etcdctl TLS flags; an empty file name leaves its flag out (e.g. no client cert). */
function tlsArgs(tls: EtcdctlTls | undefined): string[] {
  if (!tls) return [];
  const flags: [string, string][] = [
    ['--cacert', tls.caFile],
    ['--cert', tls.certFile],
    ['--key', tls.keyFile],
  ];
  return flags.filter(([, file]) => file !== '').map(([flag, file]) => `${flag}=${file}`);
}

/** Runs Debian's etcdctl (API v3) against the cluster; TLS defaults to the first member's files. */
export function etcdctl(
  cluster: EtcdCluster,
  args: string[],
  opts: { tls?: EtcdctlTls; endpoints?: string[]; timeoutMs?: number } = {},
): Promise<EtcdctlResult> {
  const endpoints = opts.endpoints ?? cluster.endpoints;
  const tls = opts.tls ?? cluster.members[0]?.tls;
  const allArgs = [`--endpoints=${endpoints.join(',')}`, ...tlsArgs(tls), ...args];
  return run(ETCDCTL, allArgs, opts.timeoutMs ?? 30_000);
}

function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---- the cluster ----------------------------------------------------------------------------
export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const n = opts.members ?? 3;
  const names = opts.names ?? Array.from({ length: n }, (_, i) => `etcd-${i + 1}`);
  if (names.length !== n) throw new Error(`names has ${names.length} entries, members is ${n}`);
  const scheme = opts.tls ? 'https' : 'http';
  const addresses = pickAddresses(n);
  const dir = await makeTempDir('k3s-etcd-it-');
  const children = new Map<string, ChildProcess>();
  const members: EtcdMemberProc[] = [];
  const memberArgs = new Map<string, string[]>();
  const spawnMember = (m: EtcdMemberProc, args: string[]): void => {
    const fd = openSync(m.logFile, 'a');
    const child = spawn(ETCD, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...cleanEnv(), ...opts.env },
    });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not spawn ${ETCD}`);
    child.unref(); // a forgotten cluster must not keep the test process alive; the exit hook kills it
    // Only while it has not exited: a reaped pid (and group id) may already be someone else's.
    trackGroup(child.pid, () => child.exitCode === null && child.signalCode === null);
    children.set(m.name, child);
    m.pid = child.pid;
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      // Short grace: a leader whose peers are stopping too retries leadership transfer for ~7 s
      // before it exits, and the data is thrown away anyway.
      await Promise.all([...children.values()].map((c) => stopProcess(c, 2_000)));
      await removeTempDir(dir);
      for (const a of addresses) usedAddresses.delete(a);
    })());

  try {
    const shared = opts.samePorts ? await sharedFreePorts(addresses) : undefined;
    for (const [i, name] of names.entries()) {
      const address = addresses[i] ?? '';
      const [clientPort, peerPort] = shared ?? (await freePorts(address));
      const tls = opts.tls ? await opts.tls(name, i, address) : undefined;
      const m: EtcdMemberProc = {
        name,
        address,
        clientPort,
        peerPort,
        clientUrl: `${scheme}://${address}:${clientPort}`,
        peerUrl: `${scheme}://${address}:${peerPort}`,
        dataDir: join(dir, `${name}.etcd`),
        pid: 0,
        logFile: join(dir, `${name}.log`),
      };
      if (tls) m.tls = tls;
      const extraIp = opts.extraClientIp?.(address, i);
      if (extraIp) m.extraClientUrl = `${scheme}://${extraIp}:${clientPort}`;
      members.push(m);
    }
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const token = `k3s-etcd-it-${randomBytes(6).toString('hex')}`;
    for (const m of members) {
      const args = [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${m.clientUrl}${m.extraClientUrl ? `,${m.extraClientUrl}` : ''}`,
        `--advertise-client-urls=${m.clientUrl}`,
        `--listen-peer-urls=${m.peerUrl}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        `--initial-cluster-token=${token}`,
        '--logger=zap',
        '--log-outputs=stderr',
      ];
      if (m.tls) {
        args.push(
          '--client-cert-auth',
          `--trusted-ca-file=${m.tls.caFile}`,
          `--cert-file=${m.tls.certFile}`,
          `--key-file=${m.tls.keyFile}`,
          '--peer-client-cert-auth',
          `--peer-trusted-ca-file=${m.tls.caFile}`,
          `--peer-cert-file=${m.tls.peerCertFile}`,
          `--peer-key-file=${m.tls.peerKeyFile}`,
        );
      }
      args.push(...(opts.extraArgs ?? []), ...((await opts.memberArgs?.(m)) ?? []));
      memberArgs.set(m.name, args);
      spawnMember(m, args);
    }
    await waitReady(members, children, opts.startTimeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    members,
    endpoints: members.map((m) => m.clientUrl),
    dir,
    stop,
    async stopMember(name: string) {
      const child = children.get(name);
      if (!child) throw new Error(`no member named ${name}`);
      await stopProcess(child);
    },
    async startMember(name: string) {
      const m = members.find((x) => x.name === name);
      const args = memberArgs.get(name);
      const child = children.get(name);
      if (!m || !args) throw new Error(`no member named ${name}`);
      if (child && child.exitCode === null && child.signalCode === null)
        throw new Error(`${name} is running`);
      spawnMember(m, args); // same data dir: it rejoins as the same member
      await waitReady([m], children, opts.startTimeoutMs ?? 30_000);
    },
  };
}

/** Polls `etcdctl endpoint health` on every member until all pass; fails fast if one exits. */
async function waitReady(
  members: EtcdMemberProc[],
  children: Map<string, ChildProcess>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(members);
  let lastErr = '';
  while (pending.size > 0) {
    for (const m of members) {
      const c = children.get(m.name);
      if (c && (c.exitCode !== null || c.signalCode !== null)) {
        throw new Error(
          `etcd member ${m.name} exited early (${c.exitCode ?? c.signalCode})\n${tails(members)}`,
        );
      }
    }
    await Promise.all(
      [...pending].map(async (m) => {
        const args = [
          `--endpoints=${m.clientUrl}`,
          ...tlsArgs(m.tls),
          '--dial-timeout=1s',
          '--command-timeout=2s',
          'endpoint',
          'health',
        ];
        const r = await run(ETCDCTL, args, 5000);
        if (r.code === 0) pending.delete(m);
        else lastErr = `${m.name}: ${r.stderr.trim() || r.stdout.trim()}`;
      }),
    );
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `etcd cluster not healthy after ${timeoutMs} ms; last: ${lastErr}\n${tails(members)}`,
      );
    }
    await sleep(150);
  }
}
function tails(members: EtcdMemberProc[]): string {
  return members.map((m) => `--- ${m.name} (${m.logFile}) ---\n${logTail(m.logFile)}`).join('\n');
}
