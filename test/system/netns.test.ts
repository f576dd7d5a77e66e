/**
 * The edge-host harness's private network mode (network 'bridge'): two real Debian hosts, each
 * in its own network namespace on a bridge the test made (10.213.X.0/24), answer the real OpenSSH
 * client and a TCP connect from this machine at their own addresses; a real etcd in host 1 serves
 * this machine on ADDR:2379; `changeAddress()` really moves host 1 (its old address then answers
 * nothing, the new one answers ssh); stopping leaves no bridge, veth, process or mount behind and
 * net.ipv4.ip_forward untouched.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  hostKeyLine,
  startEdgeHosts,
  stopEdgeHosts,
  type BridgeNetwork,
  type EdgeHost,
} from '../../scripts/harness/edgeHosts';
import { makeKey, realSsh } from '../../scripts/harness/sshd';
import {
  type CommandResult,
  makeTempDir,
  pidAlive,
  processesWithArg,
  removeTempDir,
  runCommand,
  sleep,
} from '../../scripts/harness/processes';

const NAMES = ['netns-a', 'netns-b'] as const;

let dir = '';
let key = '';
let hosts: EdgeHost[] = [];
let ipForwardBefore = '';

function ssh(address: string, knownHostsFile: string, command: string, connectTimeout = 10) {
  return realSsh({ key, knownHostsFile, target: `root@${address}`, command, connectTimeout });
}

/** known_hosts with the host's key under its current address. */
async function knownHostsFor(h: EdgeHost): Promise<string> {
  const file = join(dir, `known_hosts-${h.name}-${h.address}`);
  await writeFile(file, `${await hostKeyLine(h)}\n`);
  return file;
}

/** A TCP connect from this machine: 'connected', the error code (ECONNREFUSED, ...) or 'timeout'. */
function tcpProbe(
  address: string,
  port: number,
  timeoutMs: number,
): Promise<{ outcome: string; ms: number }> {
  const t = Date.now();
  return new Promise((resolve) => {
    const sock = connect({ host: address, port });
    const done = (outcome: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ outcome, ms: Date.now() - t });
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    sock.once('connect', () => done('connected'));
    sock.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

function host(i: number): EdgeHost {
  const h = hosts[i];
  assert.ok(h, `host ${i} is not running`);
  return h;
}

function bridgeOf(h: EdgeHost): BridgeNetwork {
  assert.ok(h.bridge, `${h.name} has no bridge`);
  return h.bridge;
}

const ipForward = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();

before(async () => {
  ipForwardBefore = ipForward();
  dir = await makeTempDir('k3s-etcd-netns-');
  const kp = makeKey(dir, 'id_ed25519');
  key = kp.file;
  const pub = kp.publicLine;

  const t = Date.now();
  hosts = await startEdgeHosts({
    network: 'bridge',
    hosts: NAMES.map((name) => ({ name })),
    authorizedKeys: [pub],
    nopasswdUser: false,
  });
  console.log(
    `booted ${hosts.length} hosts on ${hosts[0]?.bridge?.name} (${hosts[0]?.bridge?.subnet}) in ${Date.now() - t} ms:`,
    hosts.map(
      (h) =>
        `${h.name} ${h.address} ${h.veth} ${h.rootMode} ${JSON.stringify(h.timings)} ${h.systemState}`,
    ),
  );
});

after(async () => {
  await stopEdgeHosts(hosts);
  if (dir) await removeTempDir(dir);
});

test('each host is in its own network namespace and answers ssh and TCP at its address', async () => {
  const bridge = bridgeOf(host(0));
  assert.match(bridge.name, /^k3seb[0-9a-f]{4}$/);
  assert.match(bridge.subnet, /^10\.213\.\d{1,3}\.0\/24$/);
  assert.equal(host(1).bridge, bridge);
  const br = await runCommand('ip', ['-o', '-4', 'addr', 'show', 'dev', bridge.name]);
  assert.match(br.stdout, new RegExp(`inet ${bridge.gateway.replace(/\./g, '\\.')}/24 `));
  const ownNetns = readlinkSync('/proc/self/ns/net');
  const netnses = new Set([ownNetns]);
  for (const [i, name] of NAMES.entries()) {
    const h = host(i);
    assert.equal(h.name, name);
    assert.equal(h.network, 'bridge');
    assert.equal(h.address, bridge.address(11 + i));
    assert.ok(h.veth, `${name}: no veth`);
    const link = await runCommand('ip', ['-o', 'link', 'show', 'dev', h.veth]);
    assert.match(link.stdout, new RegExp(` master ${bridge.name} `), link.stdout);
    netnses.add(readlinkSync(`/proc/${h.leaderPid}/ns/net`));

    const probe = await tcpProbe(h.address, 22, 3_000);
    assert.equal(probe.outcome, 'connected', `${h.address}:22`);
    const r = await ssh(h.address, await knownHostsFor(h), 'hostname');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), name);

    // Inside: lo and host0 with exactly the address the harness gave, no way out.
    const addrs = await h.exec('ip -o -4 addr show');
    const inet = [...addrs.stdout.matchAll(/^\d+: (\S+)\s+inet (\S+)/gm)].map(
      (m) => `${m[1]} ${m[2]}`,
    );
    assert.deepEqual(inet.sort(), [`host0 ${h.address}/24`, 'lo 127.0.0.1/8']);
    const routes = await h.exec('ip -4 route show');
    assert.equal(routes.stdout.trim().split('\n').length, 1, routes.stdout);
    assert.match(routes.stdout, new RegExp(`^${bridge.subnet.replace(/\./g, '\\.')} dev host0 `));
    const sshd = await h.exec(`ss -Htln 'sport = :22'`);
    assert.match(sshd.stdout, /\b0\.0\.0\.0:22\b/);
  }
  assert.equal(netnses.size, 3, 'each host has a network namespace of its own');
  assert.equal(ipForward(), ipForwardBefore, 'net.ipv4.ip_forward changed');
});

test("a real etcd on host 1's address serves this machine through the bridge", async () => {
  const h = host(0);
  await copyFile('/usr/bin/etcd', join(h.root, 'usr/local/bin/etcd'));
  const url = (port: number) => `http://${h.address}:${port}`;
  const start = await h.exec(
    [
      'systemd-run --unit=lab-etcd /usr/local/bin/etcd --name=netns-a --data-dir=/var/lib/lab-etcd',
      `--listen-client-urls=${url(2379)} --advertise-client-urls=${url(2379)}`,
      `--listen-peer-urls=${url(2380)} --initial-advertise-peer-urls=${url(2380)}`,
      `--initial-cluster=netns-a=${url(2380)}`,
    ].join(' '),
  );
  assert.equal(start.code, 0, start.stderr);
  const t = Date.now();
  let health: CommandResult = { code: -1, stdout: '', stderr: '' };
  for (const end = Date.now() + 20_000; Date.now() < end; await sleep(200)) {
    health = await runCommand('curl', ['-sS', '-m', '2', `${url(2379)}/health`]);
    if (health.code === 0 && /"health":\s*"true"/.test(health.stdout)) break;
  }
  assert.match(
    health.stdout,
    /"health":\s*"true"/,
    `${health.stderr}\n${(await h.exec('journalctl -u lab-etcd -n 20 --no-pager')).stdout}`,
  );
  console.log(`etcd healthy at ${url(2379)} after ${Date.now() - t} ms: ${health.stdout.trim()}`);
  // Host 2's ports are its own: nothing listens on its 2379 (its kernel refuses at once).
  const other = await tcpProbe(host(1).address, 2379, 3_000);
  assert.equal(other.outcome, 'ECONNREFUSED');
});

test('changeAddress moves host 1: the old address answers nothing, the new one answers ssh', async () => {
  const h = host(0);
  const bridge = bridgeOf(h);
  const old = h.address;
  const moved = bridge.address(21);
  const t = Date.now();
  await h.changeAddress(moved);
  console.log(`changeAddress ${old} -> ${moved} in ${Date.now() - t} ms`);
  assert.equal(h.address, moved);
  assert.match(await hostKeyLine(h), new RegExp(`^${moved.replace(/\./g, '\\.')} ssh-ed25519 `));
  assert.match(await hostKeyLine(h, old), new RegExp(`^${old.replace(/\./g, '\\.')} ssh-ed25519 `));

  // The old address: no connection within a short deadline (refused, unreachable or silent).
  let probe = { outcome: 'connected', ms: 0 };
  for (const end = Date.now() + 5_000; Date.now() < end;) {
    probe = await tcpProbe(old, 22, 3_000);
    if (probe.outcome !== 'connected') break;
    await sleep(100);
  }
  console.log(`old ${old}:22 after the move: ${probe.outcome} after ${probe.ms} ms`);
  assert.ok(['timeout', 'EHOSTUNREACH', 'ECONNREFUSED'].includes(probe.outcome), probe.outcome);
  assert.ok(probe.ms <= 3_500, `${probe.ms} ms`);
  const oldSsh = await ssh(old, await knownHostsFor(host(1)), 'hostname', 3);
  assert.equal(oldSsh.code, 255, `ssh to the old address: ${oldSsh.stdout}${oldSsh.stderr}`);

  // The new address: ssh answers with the host's name and its (unchanged) host key.
  const r = await ssh(moved, await knownHostsFor(h), 'hostname');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'netns-a');
  const addrs = await h.exec('ip -o -4 addr show dev host0');
  assert.match(addrs.stdout, new RegExp(` inet ${moved.replace(/\./g, '\\.')}/24 `));
  assert.doesNotMatch(addrs.stdout, new RegExp(` inet ${old.replace(/\./g, '\\.')}/`));
  const named = await h.exec('getent hosts netns-a');
  assert.equal(named.stdout.trim().split(/\s+/)[0], moved);

  // etcd still holds its socket on the old address: the stale peer URL the repair is for.
  const etcdSockets = await h.exec(`ss -Htln 'sport = :2379 or sport = :2380'`);
  assert.match(etcdSockets.stdout, new RegExp(`${old.replace(/\./g, '\\.')}:2379`));
  const atNew = await tcpProbe(moved, 2379, 3_000);
  assert.equal(atNew.outcome, 'ECONNREFUSED');

  // Host 2 is not disturbed.
  const b = host(1);
  const rb = await ssh(b.address, await knownHostsFor(b), 'hostname');
  assert.equal(rb.code, 0, rb.stderr);
  assert.equal(rb.stdout.trim(), 'netns-b');
  await assert.rejects(h.changeAddress(b.address), /already used/);
  await assert.rejects(h.changeAddress('10.99.0.5'), /not a host address/);
});

test('stopping removes the bridge, the veths, the processes and the mounts', async () => {
  const stopped = [...hosts];
  const bridge = bridgeOf(host(0));
  const veths = stopped.map((h) => h.veth ?? '');
  const t = Date.now();
  await stopEdgeHosts(stopped);
  console.log(`stopped ${stopped.length} hosts and the bridge in ${Date.now() - t} ms`);

  const links = await runCommand('ip', ['-o', 'link', 'show']);
  const names = links.stdout
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
    .filter((n) => n !== '');
  assert.ok(!names.includes(bridge.name), `${bridge.name} still there`);
  for (const v of veths) assert.ok(!names.includes(v), `${v} still there`);
  assert.doesNotMatch(links.stdout, new RegExp(` master ${bridge.name} `));
  const route = await runCommand('ip', [
    '-4',
    'route',
    'show',
    'table',
    'all',
    'to',
    bridge.subnet,
  ]);
  assert.equal(route.stdout.trim(), '', `route left: ${route.stdout}`);
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const h of stopped) {
    assert.equal(h.stoppedBy, 'poweroff');
    assert.ok(!mountinfo.includes(h.dir), `${h.root} still mounted`);
    assert.equal(pidAlive(h.leaderPid), false, `${h.name}: systemd ${h.leaderPid} still running`);
    assert.equal(pidAlive(h.nspawnPid), false, `${h.name}: nspawn ${h.nspawnPid} still running`);
    assert.deepEqual(processesWithArg(h.machine), []);
    assert.equal(existsSync(h.dir), false, `${h.dir} still exists`);
  }
  assert.equal(ipForward(), ipForwardBefore, 'net.ipv4.ip_forward changed');
  await stopEdgeHosts(stopped); // idempotent
  await bridge.remove(); // idempotent too
  hosts = [];
});
