/**
 * Provisioning etcd on real systemd hosts (Debian in systemd-nspawn, sshd on 127.0.1.4N), over
 * our SSH transport, with the etcd binaries uploaded from Debian's etcd-server package (the
 * offline path): preview, an interrupted run, a full run (three members healthy over mutual
 * TLS), a converged re-run that restarts nothing, add and remove a fourth member, a foreign
 * data dir refused; plus password login and sudo with a password for a non-root user.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { K3sEtcdError } from '../../src/core/errors';
import { clientEndpoints } from '../../src/core/inventory/select';
import type { Cluster } from '../../src/core/inventory/types';
import { listMembers } from '../../src/core/etcd/members';
import { adminTls } from '../../src/core/etcd/connection';
import { generateCertificateSet } from '../../src/core/pki/set';
import { addMember, removeMember } from '../../src/core/provision/members';
import { provisionEtcd } from '../../src/core/provision/provision';
import { type SshContext } from '../../src/core/ssh/hostSession';
import type { HostRun } from '../../src/core/plan/runner';
import { connectSsh } from '../../src/core/ssh/transport';
import { type SecretRequest } from '../../src/core/ssh/types';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import { type EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import { main } from '../../src/cli/main';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { captureIO } from '../fixtures/cli';

const ADDR = ['127.0.1.41', '127.0.1.42', '127.0.1.43', '127.0.1.44'];
const NAMES = ['edge-1', 'edge-2', 'edge-3', 'edge-4'];

const labHosts = (n: number) => NAMES.slice(0, n).map((name, i) => ({ name, address: ADDR[i]! }));
const inventoryYaml = (n: number, key: string) =>
  labInventory({ cluster: 'lab', hosts: labHosts(n), identityFile: key });

async function loadLab(dir: string, hostCount: number, key: string): Promise<Cluster> {
  await writeFile(join(dir, 'k3s-etcd.yaml'), inventoryYaml(hostCount, key));
  return loadCluster(join(dir, 'k3s-etcd.yaml'));
}

const statuses = (runs: HostRun[]) => Object.fromEntries(runs.map((r) => [r.host, r.status]));

async function sh(h: EdgeHost, cmd: string): Promise<string> {
  const r = await h.exec(cmd);
  return r.stdout.trim();
}

describe('provision etcd on real systemd hosts over SSH', () => {
  let dir = '';
  let hosts: EdgeHost[] = [];
  let cluster: Cluster;
  let ssh: SshContext;
  let key = '';

  before(async () => {
    dir = await makeTempDir('k3s-etcd-provision-');
    const k = makeKey(dir, 'id_lab');
    key = k.file;
    hosts = await startEdgeHosts({
      hosts: labHosts(NAMES.length),
      authorizedKeys: [k.publicLine],
    });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    cluster = await loadLab(dir, 3, key);
    await generateCertificateSet(cluster);
    ssh = labSsh(dir);
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('previews: every step of every host would change, and the hosts stay untouched', async () => {
    const { runs } = await provisionEtcd(cluster, { dryRun: true, ssh });
    assert.deepEqual(statuses(runs), {
      'edge-1': 'would-change',
      'edge-2': 'would-change',
      'edge-3': 'would-change',
    });
    const steps = runs[0]!.steps;
    assert.ok(steps.length >= 15, `a full plan (${steps.length} steps)`);
    assert.ok(steps.filter((s) => s.status === 'would-change').length >= 10);
    assert.ok(steps.every((s) => s.status !== 'changed'));
    for (const h of hosts.slice(0, 3)) {
      assert.equal(
        await sh(h, 'ls /etc/etcd 2>/dev/null | wc -l; id -u etcd 2>/dev/null || echo none'),
        '0\nnone',
      );
    }
  });

  it('an SSH connection killed mid-run fails that host only; the next run converges', async () => {
    let killed = false;
    const { runs } = await provisionEtcd(cluster, {
      dryRun: false,
      ssh,
      onStep: (host, step) => {
        if (
          host === 'edge-1' &&
          !killed &&
          step.status === 'pending' &&
          /etcd\.env/.test(step.title)
        ) {
          killed = true;
          void hosts[0]!.exec("pkill -KILL -f 'sshd: root@notty'");
        }
      },
    });
    assert.ok(killed, 'the run reached the env file on edge-1');
    assert.equal(statuses(runs)['edge-1'], 'failed');
    assert.match(runs.find((r) => r.host === 'edge-1')!.error!.message, /edge-1/);

    const again = await provisionEtcd(cluster, { dryRun: false, ssh });
    assert.deepEqual(
      Object.values(statuses(again.runs)).every((s) => s === 'changed' || s === 'unchanged'),
      true,
      JSON.stringify(again.runs.map((r) => r.error)),
    );
    assert.equal(again.healthy, true, again.healthSummary);
  });

  it('three members healthy over mutual TLS, with the files, owners and modes the plan promises', async () => {
    const members = await listMembers(clientEndpoints(cluster), { tls: adminTls(cluster) });
    assert.deepEqual(members.map((m) => m.name).sort(), ['edge-1', 'edge-2', 'edge-3']);
    for (const h of hosts.slice(0, 3)) {
      assert.equal(await sh(h, 'systemctl is-active etcd'), 'active', h.name);
      assert.equal(await sh(h, 'systemctl is-enabled etcd'), 'enabled', h.name);
      assert.equal(
        await sh(
          h,
          "stat -c '%n %a %U %G' /etc/etcd/pki/server-key.pem /etc/etcd/pki/peer-key.pem /var/lib/etcd /etc/etcd/etcd.env",
        ),
        [
          '/etc/etcd/pki/server-key.pem 600 etcd etcd',
          '/etc/etcd/pki/peer-key.pem 600 etcd etcd',
          '/var/lib/etcd 700 etcd etcd',
          '/etc/etcd/etcd.env 600 root root',
        ].join('\n'),
      );
      const env = await sh(h, 'cat /etc/etcd/etcd.env');
      assert.match(env, /^ETCD_CLIENT_CERT_AUTH=true$/m);
      assert.match(env, /^ETCD_PEER_CLIENT_CERT_AUTH=true$/m);
      assert.match(await sh(h, 'systemctl show etcd -p Restart'), /Restart=always/);
    }
    // Mutual TLS for real: without a client certificate etcd refuses.
    const ep = clientEndpoints(cluster)[0]!;
    assert.throws(() =>
      execFileSync(
        'etcdctl',
        [
          `--endpoints=${ep}`,
          `--cacert=${join(cluster.pki.dir, 'ca.pem')}`,
          '--command-timeout=3s',
          'endpoint',
          'health',
        ],
        { stdio: 'pipe' },
      ),
    );
  });

  it('a re-run changes nothing and restarts nothing', async () => {
    const started = await Promise.all(
      hosts.slice(0, 3).map((h) => sh(h, 'systemctl show etcd -p ExecMainStartTimestampMonotonic')),
    );
    const t0 = performance.now();
    const { runs, healthy } = await provisionEtcd(cluster, { dryRun: false, ssh });
    const ms = performance.now() - t0;
    assert.deepEqual(statuses(runs), {
      'edge-1': 'unchanged',
      'edge-2': 'unchanged',
      'edge-3': 'unchanged',
    });
    for (const r of runs) {
      assert.ok(
        r.steps.every((s) => s.status === 'unchanged' || s.status === 'ok'),
        JSON.stringify(r.steps),
      );
    }
    assert.equal(healthy, true);
    const after = await Promise.all(
      hosts.slice(0, 3).map((h) => sh(h, 'systemctl show etcd -p ExecMainStartTimestampMonotonic')),
    );
    assert.deepEqual(after, started, 'no service restarted');
    console.log(`converged re-run of 3 hosts: ${Math.round(ms)} ms`);
  });

  it("a symlink the etcd user plants in its data dir never makes provisioning write, hand over or show root's files", async () => {
    const h = hosts[0]!;
    const victims = ['/etc/k3s-etcd-victim', '/etc/k3s-etcd-victim2'];
    const look = () =>
      sh(h, `sha256sum ${victims.join(' ')}; stat -c '%n %a %U %G' ${victims.join(' ')}`);
    await h.exec(
      `printf 'root only\\n' > ${victims[0]} && printf 'root only too\\n' > ${victims[1]} && chmod 0640 ${victims.join(' ')}`,
    );
    const before = await look();
    const asEtcd = async (cmd: string) => {
      const r = await h.exec(
        `su -s /bin/sh -c ${JSON.stringify(`cd /var/lib/etcd && ${cmd}`)} etcd`,
      );
      assert.equal(r.code, 0, r.stderr);
    };
    try {
      // 1. The marker made to need a rewrite (its mode), and the name the old script staged it
      //    under planted as a link to a root file: the rewrite replaces the marker only.
      await asEtcd(
        `chmod 0644 .k3s-etcd-cluster && ln -s ${victims[1]} .k3s-etcd-cluster.k3s-etcd-new`,
      );
      const { runs, healthy } = await provisionEtcd(cluster, {
        dryRun: false,
        ssh,
        hosts: ['edge-1'],
      });
      const run = runs[0]!;
      assert.equal(run.status, 'changed', JSON.stringify(run.error));
      assert.deepEqual(
        run.steps.filter((s) => s.status === 'changed').map((s) => s.title),
        ['cluster marker /var/lib/etcd/.k3s-etcd-cluster'],
      );
      assert.equal(healthy, true);
      assert.equal(await look(), before, "root's files keep their bytes, owner and mode");
      assert.equal(
        await sh(
          h,
          "stat -c '%F %a %U %G' /var/lib/etcd/.k3s-etcd-cluster; cat /var/lib/etcd/.k3s-etcd-cluster",
        ),
        'regular file 600 etcd etcd\ncluster=lab\ntoken=k3s-etcd-lab',
      );
      assert.equal(
        await sh(h, 'ls -A /var/lib/etcd | grep -c "^\\.k3s-etcd-[A-Za-z0-9]\\{8\\}$" || true'),
        '0',
        'no work folder left behind',
      );

      // 2. The marker itself a link to a root file: refused, nothing written, nothing of it shown.
      await asEtcd(`rm -f .k3s-etcd-cluster && ln -s ${victims[0]} .k3s-etcd-cluster`);
      const refused = (await provisionEtcd(cluster, { dryRun: false, ssh, hosts: ['edge-1'] }))
        .runs[0]!;
      assert.equal(refused.status, 'failed');
      assert.match(
        refused.error!.message,
        /already holds etcd data of another cluster \(its \.k3s-etcd-cluster is not a regular file\)/,
      );
      assert.doesNotMatch(refused.error!.message, /root only/);
      assert.equal(await look(), before);
      assert.equal(await sh(h, 'readlink /var/lib/etcd/.k3s-etcd-cluster'), victims[0]);
    } finally {
      // Back as provisioning leaves it.
      await h.exec(
        `rm -f ${victims.join(' ')} /var/lib/etcd/.k3s-etcd-cluster.k3s-etcd-new /var/lib/etcd/.k3s-etcd-cluster && printf 'cluster=lab\\ntoken=k3s-etcd-lab\\n' > /var/lib/etcd/.k3s-etcd-cluster && chown etcd:etcd /var/lib/etcd/.k3s-etcd-cluster && chmod 0600 /var/lib/etcd/.k3s-etcd-cluster`,
      );
    }
  });

  it('the CLI: a converged cluster needs nothing; an unreachable host fails alone, named, with the others checked', async () => {
    const { io, out } = captureIO(dir);
    assert.equal(await main(['provision', 'etcd', '--yes'], io), 0, out.join('\n'));
    assert.match(out.join('\n'), /Everything is in place on 3 host\(s\): nothing to do\./);

    out.length = 0;
    const bad = inventoryYaml(3, key).replace(
      '    hosts:\n',
      `    hosts:\n      - { name: edge-9, address: 127.0.1.49, identityFile: ${key}, roles: [etcd] }\n`,
    );
    await writeFile(join(dir, 'bad.yaml'), bad);
    const code = await main(['provision', 'etcd', '--dry-run', '--inventory', 'bad.yaml'], io);
    const text = out.join('\n');
    assert.equal(code, 1, text);
    assert.match(
      text,
      /edge-9: 127\.0\.1\.49:22 refused the connection: sshd is not running there/,
    );
    for (const h of ['edge-1', 'edge-2', 'edge-3'])
      assert.match(text, new RegExp(`${h}: unchanged`));
  });

  it('adds a fourth member (member add, then the host joins as existing), then removes it', async () => {
    const four = await loadLab(dir, 4, key);
    await generateCertificateSet(four);
    const added = await addMember(four, 'edge-4', { dryRun: false, ssh });
    assert.equal(statuses(added.runs)['edge-4'], 'changed', JSON.stringify(added.runs[0]?.error));
    assert.equal(added.healthy, true, added.healthSummary);
    const env = await sh(hosts[3]!, 'cat /etc/etcd/etcd.env');
    assert.match(env, /^ETCD_INITIAL_CLUSTER_STATE=existing$/m);
    let members = await listMembers(clientEndpoints(four), { tls: adminTls(four) });
    assert.deepEqual(members.map((m) => m.name).sort(), NAMES);

    const removed = await removeMember(four, 'edge-4', { dryRun: false, ssh });
    assert.equal(removed.memberId, added.memberId);
    members = await listMembers(clientEndpoints(cluster), { tls: adminTls(cluster) });
    assert.deepEqual(members.map((m) => m.name).sort(), NAMES.slice(0, 3));
    assert.equal(await sh(hosts[3]!, 'systemctl is-active etcd || true'), 'inactive');
    assert.match(
      await sh(hosts[3]!, 'ls -d /var/lib/etcd.removed-* | wc -l'),
      /^1$/,
      'the data was kept, moved aside',
    );
  });

  it('--purge-data deletes a data dir only when its marker names this cluster', async () => {
    const four = await loadLab(dir, 4, key);
    const h = hosts[3]!;
    // edge-4 is no longer a member: only its unit is stopped and its data dir handled.
    await h.exec(
      'rm -rf /var/lib/etcd && mkdir -p /var/lib/etcd/member && echo "cluster=other" > /var/lib/etcd/.k3s-etcd-cluster',
    );
    const kept = await removeMember(four, 'edge-4', { dryRun: false, ssh, purgeData: true });
    assert.match(
      kept.lines.join('\n'),
      /exit 3 \/var\/lib\/etcd was not deleted: it is not a folder whose \.k3s-etcd-cluster names cluster lab/,
    );
    assert.equal(
      await sh(h, 'ls -A /var/lib/etcd'),
      '.k3s-etcd-cluster\nmember',
      'nothing deleted',
    );
    await h.exec(`printf 'cluster=lab\\ntoken=k3s-etcd-lab\\n' > /var/lib/etcd/.k3s-etcd-cluster`);
    await removeMember(four, 'edge-4', { dryRun: false, ssh, purgeData: true });
    assert.equal(await sh(h, 'ls -d /var/lib/etcd 2>/dev/null || echo gone'), 'gone');
  });

  it('refuses a host whose data dir holds another cluster, and says how to proceed', async () => {
    const four = await loadLab(dir, 4, key);
    await hosts[3]!.exec(
      'mkdir -p /var/lib/etcd/member/snap && echo "cluster=other" > /var/lib/etcd/.k3s-etcd-cluster',
    );
    const { runs } = await provisionEtcd(four, { dryRun: false, ssh, hosts: ['edge-4'] });
    const run = runs[0]!;
    assert.equal(run.status, 'failed');
    assert.match(
      run.error!.message,
      /already holds etcd data of another cluster \(cluster=other \)\. It is never deleted/,
    );
    assert.equal(await sh(hosts[3]!, 'ls /var/lib/etcd/member'), 'snap', 'nothing was touched');
  });

  it("refuses a data dir that holds another user's files or is a link, and gives nothing to etcd", async () => {
    const four = await loadLab(dir, 4, key);
    const h = hosts[3]!;
    // A real run (the membership check aside): the guards stop it before anything changes.
    const run = async () =>
      (
        await provisionEtcd(four, {
          dryRun: false,
          ssh,
          hosts: ['edge-4'],
          skipMembershipCheck: true,
        })
      ).runs[0]!;
    const owners = "stat -c '%U %a' /var/lib/etcd /var/lib/etcd/notes /srv/elsewhere";
    await h.exec(
      'rm -rf /var/lib/etcd /srv/elsewhere && mkdir -p /var/lib/etcd /srv/elsewhere && echo mine > /var/lib/etcd/notes && chown -R nobody /var/lib/etcd && chmod 0755 /var/lib/etcd',
    );
    const before = await sh(h, owners);
    const foreign = await run();
    assert.equal(foreign.status, 'failed');
    assert.match(
      foreign.error!.message,
      /\/var\/lib\/etcd already holds 1 files or folders of nobody, not etcd's, and no \.k3s-etcd-cluster: they would be given to the etcd user/,
    );
    assert.equal(await sh(h, owners), before, 'owners and modes unchanged');

    await h.exec('rm -rf /var/lib/etcd && ln -s /srv/elsewhere /var/lib/etcd');
    const link = await run();
    assert.equal(link.status, 'failed');
    assert.match(
      link.error!.message,
      /\/var\/lib\/etcd is a symbolic link: set etcd\.dataDir to the folder itself/,
    );
    assert.equal(
      await sh(h, "stat -c '%U %a' /srv/elsewhere"),
      'root 755',
      "the target is still root's",
    );
    await h.exec('rm -f /var/lib/etcd && rm -rf /srv/elsewhere');
  });

  it('refuses a host where another program holds the etcd port, naming it', async () => {
    const four = await loadLab(dir, 4, key);
    await hosts[3]!.exec('rm -rf /var/lib/etcd');
    // The hosts share this machine's network: a listener here is a listener on edge-4's address.
    await generateCertificateSet(four);
    const accepted: Socket[] = [];
    const squatter = createServer((sock) => void accepted.push(sock));
    await new Promise<void>((r) => squatter.listen(2379, ADDR[3], r));
    try {
      // Joining the running cluster (a dry run of member add): the checks run on edge-4 first.
      const { runs } = await addMember(four, 'edge-4', { dryRun: true, ssh });
      assert.equal(runs[0]!.status, 'failed');
      assert.match(
        runs[0]!.error!.message,
        /edge-4, step \d+ "ports 2379 and 2380 on 127\.0\.1\.44 are free for etcd": a port etcd needs \(2379 or 2380\) on 127\.0\.1\.44 is taken by another program/,
      );
    } finally {
      for (const sock of accepted) sock.destroy();
      squatter.close();
    }
  });

  it('downloads the release on the host, refuses a checksum mismatch, and installs a matching one', async () => {
    // A release server on this machine's loopback (the hosts share its network), serving a
    // tarball laid out like etcd's releases, made from Debian's binaries.
    const rel = join(dir, 'release', 'v3.4.23');
    const tarName = 'etcd-v3.4.23-linux-amd64.tar.gz';
    await mkdir(join(rel, 'etcd-v3.4.23-linux-amd64'), { recursive: true });
    await copyFile('/usr/bin/etcd', join(rel, 'etcd-v3.4.23-linux-amd64', 'etcd'));
    await copyFile('/usr/bin/etcdctl', join(rel, 'etcd-v3.4.23-linux-amd64', 'etcdctl'));
    execFileSync('tar', ['-czf', tarName, 'etcd-v3.4.23-linux-amd64'], { cwd: rel });
    const tarball = await readFile(join(rel, tarName));
    let sums = `${'0'.repeat(64)}  ${tarName}\n`;
    const server = createHttpServer((req, res) => {
      if (req.url === `/v3.4.23/${tarName}`) res.end(tarball);
      else if (req.url === '/v3.4.23/SHA256SUMS') res.end(sums);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      await writeFile(
        join(dir, 'solo.yaml'),
        `version: 1
clusters:
  - name: solo
    knownHostsFile: known_hosts
    etcd: { version: v3.4.23, install: download, downloadUrl: "http://127.0.0.1:${port}/{version}/etcd-{version}-linux-{arch}.tar.gz" }
    hosts:
      - { name: edge-4, address: ${ADDR[3]}, identityFile: ${key}, roles: [etcd] }
`,
      );
      const solo = await loadCluster(join(dir, 'solo.yaml'));
      await generateCertificateSet(solo);
      await hosts[3]!.exec('rm -rf /var/lib/etcd /usr/local/bin/etcd /usr/local/bin/etcdctl');

      const bad = await provisionEtcd(solo, { dryRun: false, ssh });
      assert.equal(bad.runs[0]!.status, 'failed');
      assert.match(
        bad.runs[0]!.error!.message,
        /checksum of etcd-v3\.4\.23-linux-amd64\.tar\.gz does not match the release's SHA256SUMS: not installing it/,
      );
      assert.equal(
        await sh(hosts[3]!, 'ls /usr/local/bin/etcd 2>/dev/null || echo absent'),
        'absent',
      );

      sums = `${createHash('sha256').update(tarball).digest('hex')}  ${tarName}\n`;
      const good = await provisionEtcd(solo, { dryRun: false, ssh });
      assert.equal(good.runs[0]!.status, 'changed', JSON.stringify(good.runs[0]!.error));
      assert.equal(good.healthy, true, good.healthSummary);
      assert.match(
        await sh(hosts[3]!, '/usr/local/bin/etcd --version | head -n 1'),
        /^etcd Version: 3\.4\.23$/,
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('logs in with a password and becomes root through sudo with a password; a wrong one is refused', async () => {
    const target = {
      label: ADDR[0]!,
      hostName: ADDR[0]!,
      port: 22,
      user: 'edge',
      identityFiles: [],
      jumps: [],
      knownHostsFiles: [join(dir, 'known_hosts')],
    };
    const asked: SecretRequest[] = [];
    const answers: Record<string, string[]> = {
      password: ['edge-sudo-pw'],
      sudo: ['nope', 'edge-sudo-pw'],
    };
    const s = await connectSsh(target, {
      agentSocket: '',
      prompts: {
        secret: async (req) => {
          asked.push(req);
          return answers[req.kind]?.shift();
        },
        unknownHostKey: async () => false,
      },
    });
    try {
      assert.equal((await s.exec('id -un')).stdout.trim(), 'edge');
      const r = await s.exec('id -u; cat /etc/etcd/etcd.env | head -n 1', { sudo: true });
      assert.equal(r.stdout.split('\n')[0], '0');
      assert.match(r.stdout, /written by k3s-etcd/);
      assert.deepEqual(
        asked.map((a) => `${a.kind}#${a.attempt}`),
        ['password#1', 'sudo#1', 'sudo#2'],
      );
      const ps = await sh(hosts[0]!, 'ps -eo args');
      assert.doesNotMatch(ps, /edge-sudo-pw/, 'the password is never on a command line');
    } finally {
      s.close();
    }

    const bad = await connectSsh(target, {
      agentSocket: '',
      prompts: {
        secret: async (req) => (req.kind === 'password' ? 'edge-sudo-pw' : 'wrong'),
        unknownHostKey: async () => false,
      },
    });
    try {
      await assert.rejects(
        bad.exec('true', { sudo: true }),
        (e) =>
          e instanceof K3sEtcdError &&
          e.code === 'ssh-sudo-refused' &&
          /three times/.test(e.message),
      );
    } finally {
      bad.close();
    }
  });
});
