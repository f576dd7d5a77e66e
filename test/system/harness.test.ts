/**
 * The edge-host harness itself: two real Debian hosts (systemd + sshd in systemd-nspawn) boot,
 * answer the real OpenSSH client with their own names and host keys, enforce sudo passwords,
 * and leave nothing behind when stopped.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import { makeKey, realSsh } from '../../scripts/harness/sshd';
import type { EdgeHost } from '../../scripts/harness/edgeHosts';
import {
  type CommandResult,
  makeTempDir,
  pidAlive,
  processesWithArg,
  removeTempDir,
  runCommand,
  sleep,
} from '../../scripts/harness/processes';

const ADDRESSES = ['127.0.1.31', '127.0.1.32'] as const;
const SUDO_PW = 'edge-sudo-pw';

let dir = '';
let key = '';
let hosts: EdgeHost[] = [];
const knownHosts: Record<string, string> = {};

function ssh(
  user: string,
  address: string,
  knownHostsFile: string,
  command: string,
  input?: string,
) {
  return realSsh({
    key,
    knownHostsFile,
    target: `${user}@${address}`,
    command,
    ...(input === undefined ? {} : { input }),
  });
}

function host(i: number): EdgeHost {
  const h = hosts[i];
  assert.ok(h, `host ${i} is not running`);
  return h;
}

before(async () => {
  dir = await makeTempDir('k3s-etcd-sys-');
  const kp = makeKey(dir, 'id_ed25519');
  key = kp.file;
  const pub = kp.publicLine;

  const t = Date.now();
  hosts = await startEdgeHosts({
    hosts: [
      { name: 'edge-a', address: ADDRESSES[0] },
      { name: 'edge-b', address: ADDRESSES[1] },
    ],
    authorizedKeys: [pub],
  });
  console.log(
    `booted ${hosts.length} hosts in ${Date.now() - t} ms:`,
    hosts.map((h) => `${h.name} ${h.rootMode} ${JSON.stringify(h.timings)} ${h.systemState}`),
  );
  for (const h of hosts) {
    knownHosts[h.name] = join(dir, `known_hosts-${h.name}`);
    await writeFile(knownHosts[h.name] ?? '', `${await hostKeyLine(h)}\n`);
  }
});

after(async () => {
  await stopEdgeHosts(hosts);
  if (dir) await removeTempDir(dir);
});

test('each host answers the real ssh client as root with its own name and pinned host key', async () => {
  for (const [i, name] of ['edge-a', 'edge-b'].entries()) {
    const h = host(i);
    assert.equal(h.name, name);
    assert.equal(h.address, ADDRESSES[i]);
    const r = await ssh('root', h.address, knownHosts[name] ?? '', 'hostname');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), name);
  }
});

test('the two hosts have different host keys, and ssh refuses the other host key', async () => {
  const a = await hostKeyLine(host(0));
  const b = await hostKeyLine(host(1));
  assert.match(a, /^127\.0\.1\.31 ssh-ed25519 AAAA\S+$/);
  assert.match(b, /^127\.0\.1\.32 ssh-ed25519 AAAA\S+$/);
  assert.notEqual(a.split(' ')[2], b.split(' ')[2]);
  // edge-a's key written down under edge-b's address: StrictHostKeyChecking must refuse.
  const wrong = join(dir, 'known_hosts-wrong');
  await writeFile(wrong, `${ADDRESSES[1]} ${a.split(' ').slice(1).join(' ')}\n`);
  const r = await ssh('root', ADDRESSES[1], wrong, 'true');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
});

test('systemd runs sshd inside; exec reports exit codes without throwing', async () => {
  for (const h of hosts) {
    assert.ok(['running', 'degraded'].includes(h.systemState), h.systemState);
    const active = await h.exec('systemctl is-active ssh');
    assert.equal(active.stdout.trim(), 'active', active.stderr);
    const fail = await h.exec('echo out; echo err >&2; exit 7');
    assert.deepEqual(fail, { code: 7, stdout: 'out\n', stderr: 'err\n' });
    const pid1 = await h.exec('cat /proc/1/comm');
    assert.equal(pid1.stdout.trim(), 'systemd');
  }
});

test('user edge needs its sudo password; edgenp has NOPASSWD sudo', async () => {
  const h = host(0);
  const kh = knownHosts[h.name] ?? '';
  const who = await ssh('edge', h.address, kh, 'id -un');
  assert.equal(who.code, 0, who.stderr);
  assert.equal(who.stdout.trim(), 'edge');

  const n = await ssh('edge', h.address, kh, 'sudo -n true');
  assert.notEqual(n.code, 0, 'sudo -n succeeded without a password');
  assert.match(n.stderr, /password is required/);

  const s = await ssh('edge', h.address, kh, `echo ${SUDO_PW} | sudo -S -p '' id -u`);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stdout.trim(), '0');

  const bad = await ssh('edge', h.address, kh, `echo wrong | sudo -S -p '' true`);
  assert.notEqual(bad.code, 0);

  const np = await ssh('edgenp', h.address, kh, 'sudo -n id -u');
  assert.equal(np.code, 0, np.stderr);
  assert.equal(np.stdout.trim(), '0');
});

test("a host's etcd binds its own address on 2379/2380 and serves this machine", async () => {
  const h = host(0);
  // Debian's etcd (linked against libc only) copied in, started as a transient systemd unit.
  await copyFile('/usr/bin/etcd', join(h.root, 'usr/local/bin/etcd'));
  const url = (port: number) => `http://${h.address}:${port}`;
  const start = await h.exec(
    [
      'systemd-run --unit=lab-etcd /usr/local/bin/etcd --name=edge-a --data-dir=/var/lib/lab-etcd',
      `--listen-client-urls=${url(2379)} --advertise-client-urls=${url(2379)}`,
      `--listen-peer-urls=${url(2380)} --initial-advertise-peer-urls=${url(2380)}`,
      `--initial-cluster=edge-a=${url(2380)}`,
    ].join(' '),
  );
  assert.equal(start.code, 0, start.stderr);
  let health: CommandResult = { code: -1, stdout: '', stderr: '' };
  for (const end = Date.now() + 20_000; Date.now() < end; await sleep(200)) {
    health = await runCommand('etcdctl', [`--endpoints=${url(2379)}`, 'endpoint', 'health']);
    if (health.code === 0) break;
  }
  assert.equal(
    health.code,
    0,
    `${health.stderr}\n${(await h.exec('journalctl -u lab-etcd -n 20 --no-pager')).stdout}`,
  );
  const listening = await h.exec(`ss -Htln 'sport = :2379 or sport = :2380'`);
  assert.match(listening.stdout, /127\.0\.1\.31:2379/);
  assert.match(listening.stdout, /127\.0\.1\.31:2380/);
  assert.equal(await portFree(ADDRESSES[1], 2379), true, "edge-b's 2379 must stay free");
});

function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, address, () => srv.close(() => resolve(true)));
  });
}

test('stop() powers off, unmounts the overlay and leaves no process or dir behind', async () => {
  const stopped = [...hosts];
  for (const h of stopped) {
    assert.ok(
      readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${h.root} `) || h.rootMode === 'copy',
    );
    assert.deepEqual(processesWithArg(h.machine), [h.nspawnPid]);
  }
  const t = Date.now();
  await stopEdgeHosts(stopped);
  console.log(`stopped ${stopped.length} hosts in ${Date.now() - t} ms`);
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const h of stopped) {
    assert.ok(!mountinfo.includes(h.root), `${h.root} still mounted`);
    assert.equal(pidAlive(h.leaderPid), false, `${h.name}: systemd ${h.leaderPid} still running`);
    assert.equal(pidAlive(h.nspawnPid), false, `${h.name}: nspawn ${h.nspawnPid} still running`);
    assert.deepEqual(processesWithArg(h.machine), []);
    assert.equal(existsSync(h.dir), false, `${h.dir} still exists`);
    assert.equal(h.stoppedBy, 'poweroff');
    for (const port of [22, 2379, 2380]) {
      assert.equal(await portFree(h.address, port), true, `${h.address}:${port} still taken`);
    }
    const r = await h.exec('true');
    assert.equal(r.code, 255);
  }
  await stopEdgeHosts(stopped); // idempotent
  hosts = [];
});
