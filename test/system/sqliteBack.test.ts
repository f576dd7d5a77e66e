/**
 * K3s moved back from the external etcd to SQLite, on real systemd hosts: etcd provisioned on
 * three hosts (mutual TLS), two of them K3s servers (the stand-in, installed offline: the one
 * fake, see test/support/k3sStandIn.ts), etcd holding K3s-like data (a large value, leased
 * keys, a deleted key, the /bootstrap key sealed with the cluster token), and an old state.db
 * on the kept server. The dry run changes nothing; a re-point that fails on the kept server (a
 * stand-in that refuses SQLite) puts it back on etcd, Ready; then `migrate etcd-to-sqlite
 * --repoint --server edge-1 --yes` through the CLI: the state.db on the host is the verified
 * file (SHA-256) and kine's live selection of it equals etcd's (count, leased count, SHA-256),
 * config.yaml lost exactly the datastore lines, K3s started on that file and is Ready, the other
 * server is stopped and disabled, the old state.db files are moved aside.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { main } from '../../src/cli/main';
import { healthyClient } from '../../src/core/etcd/connection';
import { sha256File } from '../../src/core/files/hash';
import type { Cluster } from '../../src/core/inventory/types';
import { installK3s } from '../../src/core/k3s/ops';
import { K3S_CONFIG, K3S_DB_DIR, K3S_SQLITE } from '../../src/core/k3s/server';
import { fileTokenStore } from '../../src/core/k3s/token';
import { readEtcd } from '../../src/core/migrate/etcdSource';
import { verifyKineFile } from '../../src/core/migrate/toSqlite';
import { planMoveBack, runMoveBack } from '../../src/core/moveBack/run';
import { moveBackOutcome } from '../../src/core/moveBack/words';
import type { SshContext } from '../../src/core/ssh/hostSession';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { sealBootstrap } from '../../scripts/harness/kineFixture';
import { provisionedLab, type ProvisionedLab } from '../../scripts/harness/provisionedLab';
import { captureIO } from '../fixtures/cli';
import { STANDIN_LOG_DIR, STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';

const ADDR = ['127.0.1.211', '127.0.1.212', '127.0.1.213'];

/** Waits (up to `seconds`) until `check` exits 0 on `h`. */
async function until(h: EdgeHost, check: string, seconds: number, what: string): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if ((await h.exec(check)).code === 0) return;
    if (Date.now() > deadline) assert.fail(`${h.name}: ${what} within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const ready = `/usr/local/bin/k3s kubectl get node "$(hostname)" --no-headers | grep -q ' Ready '`;

describe('K3s back to SQLite, on real systemd hosts', () => {
  let lab: ProvisionedLab | undefined;
  let dir = '';
  let file = '';
  let hosts: EdgeHost[] = [];
  let cluster: Cluster;
  let ssh: SshContext;
  let token = '';
  let configBefore = '';

  before(async () => {
    const specs = ADDR.map((address, i) => ({
      name: `edge-${i + 1}`,
      address,
      roles: i < 2 ? ['etcd', 'k3s-server'] : ['etcd'],
    }));
    lab = await provisionedLab('k3s-etcd-sqlite-back-', specs, {
      cluster: 'lab',
      clusterLines: [
        `k3s: { version: ${STANDIN_VERSION}, install: offline, disable: [traefik], tlsSan: [k3s.lab.example] }`,
      ],
    });
    ({ dir, hosts, cluster, ssh, file } = lab);
    await writeK3sStandIn(join(dir, 'k3s-offline'));
    // An old SQLite state on edge-1 (K3s ran on SQLite before it moved to etcd).
    const old = await hosts[0]!.exec(
      `install -d -m 0700 ${K3S_DB_DIR} && printf 'stale state' > ${K3S_SQLITE} && printf 'stale wal' > ${K3S_SQLITE}-wal`,
    );
    assert.equal(old.code, 0, old.stderr);
    // Backed up first, as the install asks when it finds SQLite state.
    await mkdir(join(dir, 'backups', 'edge-1', '20200101T000000Z'), { recursive: true });
    await writeFile(join(dir, 'backups', 'edge-1', '20200101T000000Z', 'manifest.json'), '{}');
    const tokens = fileTokenStore(file, join(dir, 'tokens'));
    const lines: string[] = [];
    const k = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens,
      workspaceDir: dir,
      onLine: (h, l) => lines.push(`[${h}] ${l}`),
    });
    assert.deepEqual(
      k.runs.map((r) => r.status),
      ['changed', 'changed'],
      lines.join('\n'),
    );
    token = (await tokens.get('lab')) ?? '';
    configBefore = (await hosts[0]!.exec(`cat ${K3S_CONFIG}`)).stdout;

    // K3s-like data: a large value, leased keys, a deleted key, the sealed bootstrap data.
    const { client } = await healthyClient(cluster);
    try {
      const boot = sealBootstrap(token, JSON.stringify({ ServerCA: { Content: 'x' } }));
      await client.put(boot.key).value(boot.value);
      await client.put('/registry/configmaps/default/big').value(Buffer.alloc(700 * 1024, 7));
      for (let i = 0; i < 50; i++)
        await client.put(`/registry/pods/default/p-${i}`).value(`pod ${i}`);
      await client.delete().key('/registry/pods/default/p-7');
      const lease = client.lease(3600, { autoKeepAlive: false });
      await lease.grant();
      for (let i = 0; i < 3; i++)
        await lease.put(`/registry/events/default/e-${i}`).value(`event ${i}`);
    } finally {
      client.close();
    }
  });
  after(async () => {
    await lab?.stop();
  });

  it('several servers and none named: refused, listing them; the dry run changes nothing and shows no token', async () => {
    await mkdir(join(dir, 'dry'));
    const none = captureIO(dir);
    const args = ['migrate', 'etcd-to-sqlite', '--target', 'dry/state.db', '--repoint'];
    assert.equal(await main([...args, '--yes'], none.io), 1, none.out.join('\n'));
    assert.match(
      none.out.join('\n'),
      /Cluster lab has 2 K3s servers \(edge-1, edge-2\) and K3s on SQLite runs one: name the one that keeps running \(--server NAME\)/,
    );
    const dry = captureIO(dir);
    assert.equal(await main([...args, '--server', 'edge-1', '--dry-run'], dry.io), 0);
    const text = dry.out.join('\n');
    assert.match(text, /edge-1 keeps running\. edge-2 is stopped and disabled/);
    assert.match(
      text,
      /rewritten without datastore-endpoint, datastore-cafile, datastore-certfile, datastore-keyfile; every other key kept byte for byte \(token, disable, tls-san\)/,
    );
    assert.match(
      text,
      /state\.db → \/var\/lib\/rancher\/k3s\/server\/db\/state\.db\.old-\d{8}T\d{6}Z; .*state\.db-wal → .*state\.db-wal\.old-/,
    );
    assert.match(text, /\/bootstrap\/[0-9a-f]{12} decrypts with the token/);
    assert.doesNotMatch(text, new RegExp(token), 'the token is never shown');
    for (const h of hosts.slice(0, 2)) {
      assert.equal((await h.exec('systemctl is-active k3s')).stdout.trim(), 'active');
      assert.equal((await h.exec(`cat ${K3S_CONFIG}`)).stdout, configBefore);
    }
    assert.equal((await hosts[0]!.exec(`cat ${K3S_SQLITE}`)).stdout, 'stale state');
  });

  it('a re-point that fails on the kept server puts it back on etcd, Ready; the stopped server is named', async () => {
    const [h1, h2] = hosts as [EdgeHost, EdgeHost];
    await h1.exec(`touch ${STANDIN_LOG_DIR}/refuse-sqlite`);
    await mkdir(join(dir, 'fail'));
    const opts = { ssh, server: 'edge-1', target: join(dir, 'fail', 'state.db') };
    const plan = await planMoveBack(cluster, opts);
    const lines: string[] = [];
    const r = await runMoveBack(cluster, plan, {
      ...opts,
      readySeconds: 20,
      onLine: (h, l) => lines.push(`[${h}] ${l}`),
    }).finally(() => h1.exec(`rm -f ${STANDIN_LOG_DIR}/refuse-sqlite`));
    const words = moveBackOutcome(r).join('\n');
    assert.equal(r.ok, false);
    assert.equal(r.failedAt, 'repoint', words);
    assert.equal(r.migration?.verify.ok, true);
    assert.equal(r.rollback?.status, 'changed', lines.join('\n'));
    assert.match(
      words,
      /Moving edge-1 to SQLite failed: edge-1, step \d+ "node \S+ is Ready on SQLite"/,
    );
    assert.match(
      words,
      /edge-1 is back on etcd: its old \/etc\/rancher\/k3s\/config\.yaml restored/,
    );
    assert.match(
      words,
      /Stopped by this run, still on etcd and unchanged: edge-2\. To start them again: edge-2: sudo systemctl enable --now k3s\./,
    );
    assert.equal((await h1.exec(`cat ${K3S_CONFIG}`)).stdout, configBefore);
    await until(h1, ready, 60, 'Ready on etcd again');
    assert.match(
      (await h1.exec(`tail -n 3 ${STANDIN_LOG_DIR}/server.log`)).stdout,
      /sqlite refused \(test\)/,
    );
    assert.equal((await h2.exec('systemctl is-enabled k3s')).stdout.trim(), 'disabled');
    // What the words say to do, then the next attempt.
    assert.equal((await h2.exec('systemctl enable --now k3s')).code, 0);
    await until(h2, ready, 60, 'Ready on etcd after enable --now');
  });

  it('migrate etcd-to-sqlite --repoint --server edge-1: the verified state.db in place, config.yaml without datastore keys, Ready on SQLite, edge-2 stopped and disabled', async () => {
    const [h1, h2] = hosts as [EdgeHost, EdgeHost];
    await mkdir(join(dir, 'ok'));
    const target = join(dir, 'ok', 'state.db');
    const run = captureIO(dir);
    const code = await main(
      [
        'migrate',
        'etcd-to-sqlite',
        '--target',
        'ok/state.db',
        '--repoint',
        '--server',
        'edge-1',
        '--yes',
      ],
      run.io,
    );
    const out = run.out.join('\n');
    assert.equal(code, 0, out);
    assert.match(out, /K3s of lab runs on SQLite on edge-1: node \S+ is Ready\./);
    assert.match(
      out,
      /edge-2 is stopped and disabled: join it to edge-1 as an agent \(K3s's install\.sh with K3S_URL=https:\/\/127\.0\.1\.211:6443/,
    );
    assert.doesNotMatch(out, new RegExp(token));

    // The host's state.db is the verified file, root 0600, and K3s started on it.
    const local = await sha256File(target);
    const onHost = await h1.exec(
      `sha256sum ${K3S_SQLITE} | cut -d' ' -f1; stat -c '%a %U %G' ${K3S_SQLITE}`,
    );
    assert.equal(onHost.stdout, `${local.sha256}\n600 root root\n`);
    const started = (await h1.exec(`tail -n 1 ${STANDIN_LOG_DIR}/sqlite.log`)).stdout;
    assert.match(
      started,
      new RegExp(`^sqlite [\\d.]+ ${local.sha256}$`, 'm'),
      'K3s started on that file',
    );
    assert.equal((await h1.exec('systemctl is-active k3s')).stdout.trim(), 'active');
    await until(h1, ready, 30, 'Ready on SQLite');

    // Kine's live selection of the file equals etcd's (nothing wrote to etcd since: K3s is off it).
    const { client } = await healthyClient(cluster);
    try {
      const src = await readEtcd(client, { token });
      const v = await verifyKineFile(target, src);
      assert.equal(v.ok, true, JSON.stringify(v));
      assert.equal(v.foundKeys, src.keys.length);
      assert.ok(v.foundKeys >= 52, `${v.foundKeys} keys`);
      assert.equal(v.leasedFound, 3);
      assert.equal(v.targetSha256, src.sha256);
      assert.equal(src.token.found, true);
    } finally {
      client.close();
    }

    // config.yaml: exactly the datastore lines gone, the old file kept beside it.
    const config = (await h1.exec(`cat ${K3S_CONFIG}`)).stdout;
    assert.equal(
      config,
      configBefore
        .split('\n')
        .filter((l) => !/^datastore-/.test(l))
        .join('\n'),
    );
    assert.deepEqual(parse(config), {
      token,
      disable: ['traefik'],
      'tls-san': ['k3s.lab.example'],
    });
    const backups = await h1.exec(
      `for f in ${K3S_CONFIG}.bak.*; do sha256sum < "$f" | cut -d' ' -f1; done`,
    );
    const want = createHash('sha256').update(configBefore).digest('hex');
    assert.ok(backups.stdout.split('\n').includes(want), 'the old config.yaml is kept beside it');

    // The old state.db files moved aside, not deleted.
    const aside = await h1.exec(
      `cat ${K3S_DB_DIR}/state.db.old-* ${K3S_DB_DIR}/state.db-wal.old-*`,
    );
    assert.match(aside.stdout, /stale state/);
    assert.match(aside.stdout, /stale wal/);

    // The other server: stopped and disabled.
    assert.equal((await h2.exec('systemctl is-active k3s')).stdout.trim(), 'inactive');
    assert.equal((await h2.exec('systemctl is-enabled k3s')).stdout.trim(), 'disabled');
  });
});
