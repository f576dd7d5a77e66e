/** The etcd harness itself: real clusters start, serve, and leave nothing behind. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { etcdctl, startEtcdCluster } from '../../scripts/harness/etcd';
import type { EtcdCluster } from '../../scripts/harness/etcd';
import { pidAlive } from '../../scripts/harness/processes';

const started: EtcdCluster[] = [];
after(async () => {
  await Promise.all(started.map((c) => c.stop()));
});

test('1-member cluster: put/get through etcdctl, then stop removes process and dir', async () => {
  const cluster = await startEtcdCluster({ members: 1 });
  started.push(cluster);
  const [member] = cluster.members;
  assert.ok(member);
  assert.match(member.address, /^127\.0\.1\.\d+$/);
  assert.deepEqual(cluster.endpoints, [member.clientUrl]);
  assert.ok(member.clientUrl.startsWith('http://127.0.1.'));

  const put = await etcdctl(cluster, ['put', '/it/hello', 'world']);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(put.stdout.trim(), 'OK');
  const get = await etcdctl(cluster, ['get', '/it/hello', '--print-value-only']);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(get.stdout.trim(), 'world');

  assert.equal(pidAlive(member.pid), true);
  assert.ok(existsSync(cluster.dir));
  await cluster.stop();
  assert.equal(pidAlive(member.pid), false, `etcd ${member.pid} still running after stop()`);
  assert.equal(existsSync(cluster.dir), false, `${cluster.dir} still exists after stop()`);
  await cluster.stop(); // idempotent
});

const sh = promisify(execFile);

test('3-member cluster with mutual TLS (openssl-made ECDSA certs)', async (t) => {
  const caDir = await mkdtemp(join(tmpdir(), 'k3s-etcd-it-ca-'));
  t.after(() => rm(caDir, { recursive: true, force: true }));
  const openssl = (...args: string[]) => sh('openssl', args, { cwd: caDir });
  const f = (x: string) => join(caDir, x);
  await openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  await openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=it-ca',
    '-days',
    '1',
    '-out',
    'ca.pem',
  );

  const cluster = await startEtcdCluster({
    members: 3,
    tls: async (name, _i, address) => {
      // etcd checks a client certificate's IP SANs against the connection's source address,
      // and loopback connections to 127.0.1.x come from 127.0.0.1: the SAN needs both.
      writeFileSync(
        f(`${name}.ext`),
        `subjectAltName=IP:${address},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`,
      );
      await openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
      await openssl(
        'req',
        '-new',
        '-key',
        `${name}.key`,
        '-subj',
        `/CN=${name}`,
        '-out',
        `${name}.csr`,
      );
      await openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.pem`,
      );
      return {
        caFile: f('ca.pem'),
        certFile: f(`${name}.pem`),
        keyFile: f(`${name}.key`),
        peerCertFile: f(`${name}.pem`),
        peerKeyFile: f(`${name}.key`),
      };
    },
  });
  started.push(cluster);
  assert.ok(cluster.endpoints.every((e) => e.startsWith('https://127.0.1.')));

  const put = await etcdctl(cluster, ['put', '/it/tls', 'yes']);
  assert.equal(put.code, 0, put.stderr);
  const list = await etcdctl(cluster, ['member', 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout.trim().split('\n').length, 3);
  // Without a client certificate the server refuses (mutual TLS really is on).
  const [first] = cluster.members;
  assert.ok(first?.tls);
  const noCert = await etcdctl(
    cluster,
    ['--dial-timeout=1s', '--command-timeout=2s', 'get', '/it/tls'],
    {
      tls: { caFile: first.tls.caFile, certFile: '', keyFile: '' },
      timeoutMs: 15_000,
    },
  );
  assert.notEqual(noCert.code, 0);
  assert.match(noCert.stderr, /deadline exceeded/);
  await cluster.stop();
});

for (const mode of ['forget', 'throw', 'sigterm'] as const) {
  test(`a test process that ends without stop() (${mode}) leaves no etcd and no dir`, async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(__dirname, 'harness', 'leak-fixture.ts'), mode],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
      });
      child.once('exit', (code) =>
        reject(new Error(`fixture exited ${code} before reporting: ${err}`)),
      );
    });
    const report = JSON.parse(line) as { pids: number[]; dir: string };
    if (mode === 'sigterm') child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (c) => resolve(c));
    });
    if (mode === 'sigterm') assert.equal(code, 143);
    for (const pid of report.pids) {
      // SIGKILLed etcd are reaped by init; allow a moment.
      for (let i = 0; i < 50 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(pidAlive(pid), false, `etcd ${pid} leaked by a ${mode} test process`);
    }
    assert.equal(existsSync(report.dir), false, `${report.dir} leaked`);
  });
}
