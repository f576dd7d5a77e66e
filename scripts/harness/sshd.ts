/**
 * Real OpenSSH servers and agents for the transport tests: `/usr/sbin/sshd -D` on a loopback
 * address and port of the test's choosing, with its own host key, config and authorized_keys;
 * `ssh-agent -D` with keys added by `ssh-add`. Everything is cleaned up by the process registry.
 * And in-process `ssh2` servers that play a part (`startFakeSsh`): a password host, a logging
 * impostor that records every secret it is sent, a jump host that reroutes what it forwards.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Server as Ssh2Server, type Connection } from 'ssh2';
import { join } from 'node:path';
import {
  killGroup,
  makeTempDir,
  removeTempDir,
  runCommand,
  sleep,
  trackGroup,
  untrackGroup,
  type CommandResult,
} from './processes';

export interface KeyPair {
  file: string;
  publicLine: string;
}

/** `ssh-keygen -t <type>` into `dir`, with an optional passphrase. */
export function makeKey(
  dir: string,
  name: string,
  opts: { type?: 'ed25519' | 'ecdsa' | 'rsa'; passphrase?: string } = {},
): KeyPair {
  const file = join(dir, name);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    opts.type ?? 'ed25519',
    '-N',
    opts.passphrase ?? '',
    '-C',
    name,
    '-f',
    file,
  ]);
  return { file, publicLine: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/**
 * OpenSSH's own client, strict: only `key`, only `knownHostsFile`, unknown keys refused, no
 * prompts. Runs `command` as `user@address`.
 */
export function realSsh(opts: {
  key: string;
  knownHostsFile: string;
  target: string;
  command: string;
  connectTimeout?: number;
  input?: string;
}): Promise<CommandResult> {
  return runCommand(
    'ssh',
    [
      '-F',
      '/dev/null',
      '-i',
      opts.key,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `UserKnownHostsFile=${opts.knownHostsFile}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${opts.connectTimeout ?? 10}`,
      '-o',
      'LogLevel=ERROR',
      opts.target,
      opts.command,
    ],
    opts.input === undefined ? {} : { input: opts.input },
  );
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export interface Sshd {
  address: string;
  port: number;
  /** `<host> <type> <key>` for known_hosts (with `[addr]:port` when the port is not 22). */
  knownHostsLine: string;
  /** Everything sshd printed (LogLevel DEBUG1), for assertions on what it saw. */
  log(): string;
  stop(): Promise<void>;
}

async function waitForPort(
  address: string,
  port: number,
  deadlineMs: number,
  alive: () => boolean,
  log: () => string,
): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (!alive()) throw new Error(`sshd exited early:\n${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: address, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`sshd on ${address}:${port} did not listen within ${deadlineMs} ms:\n${log()}`);
}

/** Starts sshd on `address:port` accepting `authorizedKeys` for root. */
export async function startSshd(opts: {
  address: string;
  port: number;
  authorizedKeys: string[];
  hostKeyType?: 'ed25519' | 'ecdsa' | 'rsa';
}): Promise<Sshd> {
  // sshd's privilege-separation directory (made by the package's service, absent on a bare box).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await makeTempDir('k3s-etcd-sshd-');
  const hostKey = makeKey(dir, 'host_key', { type: opts.hostKeyType ?? 'ed25519' });
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, `${opts.authorizedKeys.join('\n')}\n`);
  chmodSync(authorized, 0o600);
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `ListenAddress ${opts.address}:${opts.port}`,
      `HostKey ${hostKey.file}`,
      `AuthorizedKeysFile ${authorized}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'StrictModes no',
      'UsePAM no',
      `PidFile ${join(dir, 'sshd.pid')}`,
      'LogLevel DEBUG1',
      'AllowTcpForwarding yes',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  let out = '';
  const logFile = join(dir, 'sshd.log');
  // -E: logs to a file (with -e, DEBUG lines would reach the sessions' stderr).
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-E', logFile, '-f', config], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const pid = child.pid as number;
  trackGroup(pid);
  await waitForPort(
    opts.address,
    opts.port,
    10_000,
    () => !exited,
    () => out + readLog(logFile),
  );
  const name = opts.port === 22 ? opts.address : `[${opts.address}]:${opts.port}`;
  const [type, key] = hostKey.publicLine.split(' ');
  return {
    address: opts.address,
    port: opts.port,
    knownHostsLine: `${name} ${type} ${key}`,
    log: () => out + readLog(logFile),
    stop: async () => {
      killGroup(pid, 'SIGTERM');
      const until = Date.now() + 5000;
      while (!exited && Date.now() < until) await sleep(25);
      if (!exited) killGroup(pid, 'SIGKILL');
      untrackGroup(pid);
    },
  };
}

export interface Agent {
  socket: string;
  stop(): Promise<void>;
}

/** `ssh-agent -D -a <sock>` holding `keys`. */
export async function startAgent(keys: string[]): Promise<Agent> {
  const dir = await makeTempDir('k3s-etcd-agent-');
  const socket = join(dir, 'agent.sock');
  const child = spawn('ssh-agent', ['-D', '-a', socket], { detached: true, stdio: 'ignore' });
  let exited = false;
  child.on('exit', () => (exited = true));
  const pid = child.pid as number;
  trackGroup(pid);
  const until = Date.now() + 5000;
  for (;;) {
    try {
      execFileSync('ssh-add', ['-l'], {
        env: { ...process.env, SSH_AUTH_SOCK: socket },
        stdio: 'ignore',
      });
      break;
    } catch (err) {
      // exit 1 = "no identities": the agent answers
      if ((err as { status?: number }).status === 1) break;
      if (Date.now() > until || exited) throw new Error('ssh-agent did not start');
      await sleep(50);
    }
  }
  for (const k of keys)
    execFileSync('ssh-add', ['-q', k], {
      env: { ...process.env, SSH_AUTH_SOCK: socket },
      stdio: 'ignore',
    });
  return {
    socket,
    stop: async () => {
      killGroup(pid, 'SIGTERM');
      untrackGroup(pid);
    },
  };
}

/** One authentication attempt a fake server received (the secret as sent: it is a test). */
export interface AuthAttempt {
  method: string;
  username: string;
  secret?: string;
}

export interface FakeSsh {
  address: string;
  port: number;
  /** `<type> <base64>` of its host key, to pin under any name in a known_hosts file. */
  hostKey: string;
  /** Every authentication attempt, in order. */
  attempts: AuthAttempt[];
  /** Every direct-tcpip request (what the client asked to reach through it). */
  forwards: { host: string; port: number }[];
  stop(): Promise<void>;
}

/**
 * An `ssh2` server on `address` (port chosen by the OS) with its own ed25519 host key. It accepts
 * `none` when `open`, a password or keyboard-interactive answer equal to `password`, and refuses
 * everything else, recording each attempt. Forwarding requests go to `forwardTo` whatever the
 * client asked for (a jump host that reroutes), or where asked. With `exec`, a command the client
 * runs gets the output and exit code `exec` returns for it (nothing runs on this machine).
 */
export async function startFakeSsh(opts: {
  address: string;
  password?: string;
  open?: boolean;
  forwardTo?: { host: string; port: number };
  exec?: (command: string) => { stdout: string; code: number };
}): Promise<FakeSsh> {
  const dir = await makeTempDir('k3s-etcd-fake-ssh-');
  const key = makeKey(dir, 'host_key');
  const attempts: AuthAttempt[] = [];
  const forwards: { host: string; port: number }[] = [];
  const conns = new Set<Connection>();
  const sockets = new Set<Socket>();
  const methods: ('password' | 'keyboard-interactive')[] = ['password', 'keyboard-interactive'];
  const server = new Ssh2Server({ hostKeys: [readFileSync(key.file)] }, (client) => {
    conns.add(client);
    client.on('close', () => conns.delete(client));
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => {
      if (ctx.method === 'none') {
        attempts.push({ method: 'none', username: ctx.username });
        return opts.open ? ctx.accept() : ctx.reject(methods);
      }
      if (ctx.method === 'password') {
        attempts.push({ method: 'password', username: ctx.username, secret: ctx.password });
        return opts.password !== undefined && ctx.password === opts.password
          ? ctx.accept()
          : ctx.reject(methods);
      }
      if (ctx.method === 'keyboard-interactive') {
        return ctx.prompt([{ prompt: 'Password: ', echo: false }], (answers) => {
          const secret = answers.join('\n');
          attempts.push({ method: 'keyboard-interactive', username: ctx.username, secret });
          if (opts.password !== undefined && secret === opts.password) ctx.accept();
          else ctx.reject(methods);
        });
      }
      attempts.push({ method: ctx.method, username: ctx.username });
      ctx.reject(methods);
    });
    client.on('session', (acceptSession) => {
      const session = acceptSession();
      session.on('exec', (accept, reject, info) => {
        if (!opts.exec) return reject?.();
        const channel = accept();
        const r = opts.exec(info.command);
        channel.write(r.stdout);
        channel.exit(r.code);
        channel.end();
      });
    });
    client.on('tcpip', (accept, reject, info) => {
      forwards.push({ host: info.destIP, port: info.destPort });
      const to = opts.forwardTo ?? { host: info.destIP, port: info.destPort };
      const sock = connect({ host: to.host, port: to.port });
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.once('error', () => reject?.());
      sock.once('connect', () => {
        const channel = accept();
        channel.pipe(sock).pipe(channel);
        channel.on('close', () => sock.destroy());
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, opts.address, () => resolve());
  });
  const [type, blob] = key.publicLine.split(' ');
  return {
    address: opts.address,
    port: (server.address() as AddressInfo).port,
    hostKey: `${type} ${blob}`,
    attempts,
    forwards,
    stop: async () => {
      for (const s of sockets) s.destroy();
      for (const c of conns) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await removeTempDir(dir);
    },
  };
}
