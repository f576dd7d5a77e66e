/**
 * Networks of edge hosts: loopback checks and sshd's banner for 'shared' mode, and the private
 * bridge (k3seb<4 hex>, a free 10.213.X.0/24) with each host's veth for 'bridge' mode.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { lockFile, must, NSENTER, onExitSync, run } from './exec';
import { procStat, sameProcess } from './processes';
import { rootfsCacheDir } from './rootfs';
import type { BridgeNetwork } from './types';

export function isLoopback(address: string): boolean {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

/** Whether `port` can be bound on `address` right now (nothing on it, nor on 0.0.0.0:port). */
export function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: address, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Resolves with the first line sshd sends on address:22, or rejects. */
export function sshBanner(address: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: address, port: 22 });
    let data = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(data.split('\n')[0]?.trim() ?? '');
    };
    const timer = setTimeout(() => done(new Error(`no banner within ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      if (data.includes('\n')) done();
    });
    sock.once('error', (err) => done(err));
    sock.once('end', () => done(new Error(`closed before a banner (got ${JSON.stringify(data)})`)));
  });
}

export const IP = 'ip';

const SYS_NET = '/sys/class/net';

/** Bridges are k3seb<4 hex>; their owner (pid:starttime) is written in the link's alias. */
const BRIDGE_RE = /^k3seb[0-9a-f]{4}$/;

const BRIDGE_BASE = '10.213';

const ROUTE_TYPES = new Set([
  'unicast',
  'local',
  'broadcast',
  'multicast',
  'throw',
  'unreachable',
  'prohibit',
  'blackhole',
  'nat',
  'anycast',
]);

/** The IPv4 address as a number, or undefined if it is not a dotted quad. */
function ipv4(address: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((acc, o) => acc * 256 + o, 0);
}

/** Whether the prefixes a/aLen and b/bLen share an address. */
function prefixesOverlap(a: number, aLen: number, b: number, bLen: number): boolean {
  const block = 2 ** (32 - Math.min(aLen, bLen));
  return Math.floor(a / block) === Math.floor(b / block);
}

interface Prefix {
  net: number;
  len: number;
  text: string;
}

/** IPv4 prefixes this machine has addresses in or routes to, in every table (default aside). */
async function usedPrefixes(): Promise<Prefix[]> {
  const out: Prefix[] = [];
  const add = (text: string) => {
    const [a = '', l] = text.split('/');
    const net = ipv4(a);
    const len = l === undefined ? 32 : Number(l);
    if (net !== undefined && Number.isInteger(len) && len >= 0 && len <= 32)
      out.push({ net, len, text });
  };
  const addrs = await must(IP, ['-o', '-4', 'addr', 'show']);
  for (const m of addrs.stdout.matchAll(/\b(?:inet|peer) (\d+\.\d+\.\d+\.\d+(?:\/\d+)?)/g)) {
    if (m[1]) add(m[1]);
  }
  const routes = await must(IP, ['-4', 'route', 'show', 'table', 'all']);
  for (const line of routes.stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    const dst = ROUTE_TYPES.has(words[0] ?? '') ? words[1] : words[0];
    if (dst && dst !== 'default') add(dst);
  }
  return out;
}

export function linkExists(name: string): boolean {
  return existsSync(join(SYS_NET, name));
}

/** The links enslaved to bridge `name` (its ports). */
function bridgePorts(name: string): string[] {
  try {
    return readdirSync(join(SYS_NET, name, 'brif'));
  } catch {
    return [];
  }
}

/** The name of the link with this ifindex in this machine's network namespace. */
function linkByIndex(index: number): string | undefined {
  try {
    for (const name of readdirSync(SYS_NET)) {
      try {
        if (Number(readFileSync(join(SYS_NET, name, 'ifindex'), 'utf8')) === index) return name;
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no sysfs
  }
  return undefined;
}

/** No IPv6 (not even a link-local address) on a link of ours here. Best effort. */
function disableIpv6Sync(link: string): void {
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${link}/disable_ipv6`, '1');
  } catch {
    // no IPv6 on this kernel, or the link is gone
  }
}

export function deleteLinkSync(name: string): void {
  if (linkExists(name)) spawnSync(IP, ['link', 'del', 'dev', name], { stdio: 'ignore' });
}

/** Deletes bridge `name` and every link still enslaved to it (synchronous: for exit hooks). */
function deleteBridgeSync(name: string): void {
  for (const port of bridgePorts(name)) deleteLinkSync(port);
  deleteLinkSync(name);
}

const ownerTag = (): string =>
  `k3s-etcd edge hosts owner=${process.pid}:${procStat(process.pid)?.startTime ?? '0'}`;

/** Bridges this process made and has not removed. */
export const liveBridges = new Set<string>();

/** Serializes choosing/creating and sweeping bridges between the test processes of this machine. */
export async function withNetLock<T>(fn: () => Promise<T>): Promise<T> {
  const file = join(dirname(rootfsCacheDir()), 'bridges.lock');
  await mkdir(dirname(file), { recursive: true });
  const release = await lockFile(file, 120);
  try {
    return await fn();
  } finally {
    release();
  }
}

/**
 * Deletes bridges k3seb* whose owner process is gone, with the veths left on them. Call under
 * the network lock: a bridge is created and tagged with its owner under that lock, so an untagged
 * one seen here was left by a creator that died in between.
 */
export function sweepStaleBridgesLocked(): void {
  let names: string[] = [];
  try {
    names = readdirSync(SYS_NET);
  } catch {
    return;
  }
  for (const name of names) {
    if (!BRIDGE_RE.test(name) || liveBridges.has(name)) continue;
    let tag = '';
    try {
      tag = readFileSync(join(SYS_NET, name, 'ifalias'), 'utf8').trim();
    } catch {
      continue; // gone meanwhile
    }
    const m = /\bowner=(\d+):(\d+)$/.exec(tag);
    if (m?.[1] && m[2] && sameProcess(Number(m[1]), m[2])) continue;
    deleteBridgeSync(name);
  }
}

export class Bridge implements BridgeNetwork {
  readonly subnet: string;
  readonly gateway: string;
  /** Machines started on this bridge and not stopped yet. */
  readonly hosts = new Set<string>();
  private removing: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly third: number,
    /** Made by startEdgeHosts: removed when its last host stops. */
    readonly owned: boolean,
    private readonly removeExitHook: () => void,
  ) {
    this.subnet = `${BRIDGE_BASE}.${third}.0/24`;
    this.gateway = `${BRIDGE_BASE}.${third}.1`;
  }

  address(n: number): string {
    if (!Number.isInteger(n) || n < 2 || n > 254) throw new Error(`host number ${n} not in 2..254`);
    return `${BRIDGE_BASE}.${this.third}.${n}`;
  }

  contains(address: string): boolean {
    const a = ipv4(address);
    const base = ipv4(`${BRIDGE_BASE}.${this.third}.0`) ?? NaN;
    return a !== undefined && a - base >= 2 && a - base <= 254;
  }

  remove(): Promise<void> {
    return (this.removing ??= (async () => {
      for (const port of bridgePorts(this.name)) await run(IP, ['link', 'del', 'dev', port]);
      if (linkExists(this.name)) {
        const r = await run(IP, ['link', 'del', 'dev', this.name]);
        if (r.code !== 0 && linkExists(this.name)) {
          this.removing = undefined; // let a later call (or the exit hook) try again
          throw new Error(`could not delete bridge ${this.name}: ${r.stderr.trim()}`);
        }
      }
      liveBridges.delete(this.name);
      this.removeExitHook();
    })());
  }

  /** A host on this bridge stopped; the last one takes an owned bridge with it. */
  async release(machine: string): Promise<void> {
    this.hosts.delete(machine);
    if (this.owned && this.hosts.size === 0) await this.remove();
  }
}

export async function makeBridge(owned: boolean): Promise<Bridge> {
  return withNetLock(async () => {
    sweepStaleBridgesLocked();
    const used = await usedPrefixes();
    const first = randomBytes(1)[0] ?? 0;
    let third: number | undefined;
    for (let i = 0; i < 256 && third === undefined; i++) {
      const x = (first + i) % 256;
      const net = ipv4(`${BRIDGE_BASE}.${x}.0`) ?? NaN;
      if (!used.some((p) => prefixesOverlap(net, 24, p.net, p.len))) third = x;
    }
    if (third === undefined) {
      throw new Error(
        `no free /24 in ${BRIDGE_BASE}.0.0/16 on this machine (in use: ${used.map((p) => p.text).join(', ')})`,
      );
    }
    let name = '';
    for (let i = 0; i < 50 && (name === '' || linkExists(name)); i++) {
      name = `k3seb${randomBytes(2).toString('hex')}`;
    }
    if (linkExists(name)) throw new Error('no free bridge name k3seb<4 hex>');
    const bridgeName = name;
    liveBridges.add(bridgeName);
    const removeExitHook = onExitSync(() => deleteBridgeSync(bridgeName));
    try {
      await must(IP, ['link', 'add', 'name', bridgeName, 'type', 'bridge']);
      await must(IP, ['link', 'set', 'dev', bridgeName, 'alias', ownerTag()]);
      disableIpv6Sync(bridgeName);
      await must(IP, ['addr', 'add', `${BRIDGE_BASE}.${third}.1/24`, 'dev', bridgeName]);
      await must(IP, ['link', 'set', 'dev', bridgeName, 'up']);
    } catch (err) {
      deleteBridgeSync(bridgeName);
      liveBridges.delete(bridgeName);
      removeExitHook();
      throw err;
    }
    return new Bridge(bridgeName, third, owned, removeExitHook);
  });
}

/**
 * Creates a private bridge network now (for tests that want to choose host addresses before the
 * hosts boot: pass it as `EdgeHostsOptions.bridge`). The caller removes it (`remove()`) after
 * stopping its hosts; the exit hooks and later runs' sweeps remove it otherwise.
 */
export async function createBridgeNetwork(): Promise<BridgeNetwork> {
  return makeBridge(false);
}

/**
 * Gives the host (in its own network namespace, as the container's systemd `pid` sees it) lo and
 * host0 with `address`/24; returns the name of the host side of its veth pair here.
 */
export async function attachToBridge(
  pid: number,
  address: string,
  deadline: number,
): Promise<string> {
  const script = [
    'set -e',
    // nspawn moves host0 in before the container's init runs; wait briefly all the same
    'i=0; until ip link show dev host0 >/dev/null 2>&1; do',
    '  i=$((i+1)); [ $i -lt 50 ] || { echo "no host0" >&2; exit 1; }; sleep 0.1',
    'done',
    'echo 1 > /proc/sys/net/ipv6/conf/host0/disable_ipv6 2>/dev/null || true',
    'ip link set dev lo up',
    `ip addr add ${address}/24 dev host0`,
    'ip link set dev host0 up',
    'ip -o link show dev host0',
  ].join('\n');
  const r = await run(NSENTER, ['-t', String(pid), '-n', '/bin/sh', '-c', script], {
    timeoutMs: Math.max(5_000, deadline - Date.now()),
  });
  if (r.code !== 0) throw new Error(`configuring host0 failed (${r.code}): ${r.stderr.trim()}`);
  const peer = Number(/^\d+: host0@if(\d+):/m.exec(r.stdout)?.[1] ?? NaN);
  const veth = Number.isInteger(peer) ? linkByIndex(peer) : undefined;
  if (!veth) throw new Error(`cannot find the veth peer of host0 here: ${r.stdout.trim()}`);
  disableIpv6Sync(veth);
  return veth;
}
