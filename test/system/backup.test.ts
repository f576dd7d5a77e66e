/**
 * Backups on the hosts, on real systemd hosts (Debian in systemd-nspawn, etcd over SSH): the
 * timer installed on edge-1 (the one backup host of a cluster of edge-1 and bravo) from the
 * inventory's backup block, a key pair made with `backup keygen` (the private key outside the
 * workspace), and a run started directly (no waiting for the clock) while bravo's member leads:
 * edge-1 takes it. The backup lands on edge-1 encrypted (no key name and no bbolt page in its bytes),
 * on bravo through the restricted receiver, and in a real S3 server (s3rver from the npm
 * registry) on loopback; aged backups at all three places are pruned to exactly the generations
 * retention.ts keeps; status lists it with its copies, and turns to failure when the newest
 * record is aged past twice the interval; the copy decrypts with the private key to the very
 * snapshot the record describes; a run warns ahead about the host's certificates that end within
 * its window; a copy that does not read back as sent, or S3 credentials others can read, fail
 * the run; --remove takes away all the install put there.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { promisify } from 'node:util';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decryptBackup } from '../../src/core/backup/crypto';
import { BACKUP_ENV } from '../../src/core/backup/install';
import { isRecord, parseBackupRecord } from '../../src/core/backup/record';
import { toPrune } from '../../src/core/backup/retention';
import { connectionFor } from '../../src/core/etcd/connection';
import { liveCluster } from '../../src/core/rolling/live';
import { createEndpointClient } from '../../src/core/etcd/client';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { main } from '../../src/cli/main';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { startS3, type S3Server } from '../../scripts/harness/s3';
import { makeKey } from '../../scripts/harness/sshd';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { captureIO } from '../fixtures/cli';

const execFileAsync = promisify(execFile);
const ADDR = ['127.0.1.141', '127.0.1.142'];
const S3_ADDR = '127.0.1.143';
const S3_PORT = 4573;
const LOCAL = '/var/lib/k3s-etcd/backups';
const DEST = '/var/backups/k3s-etcd';
const KEEP = { hourly: 2, daily: 2, weekly: 1 };
const KEYS = 30;

/** A backup name `ageH` hours ago (UTC), as the hosts name them. */
function aged(hours: number): string {
  const t = new Date(Date.now() - hours * 3_600_000).toISOString();
  return `lab-${t.slice(0, 4)}${t.slice(5, 7)}${t.slice(8, 10)}T${t.slice(11, 13)}${t.slice(14, 16)}${t.slice(17, 19)}Z`;
}

describe('backups on real hosts: encrypted, copied off the host, pruned, proven', () => {
  let dir = '';
  let keys = '';
  let hosts: EdgeHost[] = [];
  let s3: S3Server | undefined;
  const old = [1, 2, 3 * 24 + 1, 10 * 24, 40 * 24].map(aged);

  before(async () => {
    dir = await makeTempDir('k3s-etcd-backup-');
    keys = await makeTempDir('k3s-etcd-backup-keys-');
    const key = makeKey(dir, 'id_lab');
    const specs = [
      { name: 'edge-1', address: ADDR[0]!, roles: ['etcd'] },
      // An etcd member too, but not a backup host (backup.hosts: [edge-1]).
      { name: 'bravo', address: ADDR[1]!, roles: ['etcd'] },
    ];
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    s3 = await startS3({ address: S3_ADDR, port: S3_PORT, bucket: 'etcd' });
    await writeFile(
      join(dir, 'k3s-etcd.yaml'),
      labInventory({
        cluster: 'lab',
        hosts: specs,
        identityFile: 'id_lab',
        clusterLines: [
          'backup:',
          '  interval: 1h',
          `  keep: { hourly: ${KEEP.hourly}, daily: ${KEEP.daily}, weekly: ${KEEP.weekly} }`,
          '  encryption: { recipientsFile: backup-recipients.pem }',
          '  hosts: [edge-1]',
          '  destinations:',
          `    - { host: bravo, path: ${DEST} }`,
          `    - { s3: { endpoint: "${s3.endpoint}", bucket: etcd, prefix: edge-a/, credentialsFile: /etc/k3s-etcd/s3.env } }`,
        ],
      }),
    );
    const cluster = await loadCluster(join(dir, 'k3s-etcd.yaml'));
    await generateCertificateSet(cluster);
    const p = await provisionEtcd(cluster, { dryRun: false, ssh: labSsh(dir) });
    assert.equal(p.healthy, true, p.healthSummary);
    const conn = await connectionFor(cluster);
    const c = await createEndpointClient(conn.endpoints[0]!, { tls: conn.tls, timeoutMs: 10_000 });
    try {
      for (let i = 0; i < KEYS; i++)
        await c.put(`/registry/secrets/default/s${i}`).value(`top-secret-${i}`);
    } finally {
      c.close();
    }
    // The S3 credentials: a 0600 file on the backup host, never in the inventory.
    const creds = await hosts[0]!.exec(
      "mkdir -p /etc/k3s-etcd && printf 'AWS_ACCESS_KEY_ID=S3RVER\\nAWS_SECRET_ACCESS_KEY=S3RVER\\n' > /etc/k3s-etcd/s3.env && chmod 600 /etc/k3s-etcd/s3.env",
    );
    assert.equal(creds.code, 0, creds.stderr);
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    await s3?.stop();
    if (keys) await removeTempDir(keys);
    if (dir) await removeTempDir(dir);
  });

  const cli = async (args: string[]) => {
    const run = captureIO(dir);
    const code = await main(args, run.io);
    return { code, text: run.out.join('\n') };
  };
  /** A command's --json answer, after the inventory's warning (two etcd members: an even number). */
  const cliJson = (text: string): unknown => JSON.parse(text.slice(text.search(/^\{/m)));

  it('keygen, install, a run: encrypted here, on bravo and in S3; exactly the kept generations', async () => {
    const privateKey = join(keys, 'backup.key');
    const inside = await cli(['backup', 'keygen', '--out', join(dir, 'oops.key')]);
    assert.notEqual(inside.code, 0, inside.text);
    assert.match(
      inside.text,
      /is inside the workspace \(.*\): the private key must live elsewhere/,
    );
    const kg = await cli(['backup', 'keygen', '--out', privateKey]);
    assert.equal(kg.code, 0, kg.text);
    assert.match(await readFile(join(dir, 'backup-recipients.pem'), 'utf8'), /BEGIN PUBLIC KEY/);

    const install = await cli(['backup', 'install', '--yes']);
    assert.equal(install.code, 0, install.text);
    assert.match(install.text, /edge-1: changed/);
    assert.match(install.text, /bravo: changed/);
    const again = await cli(['backup', 'install', '--dry-run']);
    assert.equal(again.code, 0, again.text);
    assert.doesNotMatch(again.text, /would-change/, 'a second install changes nothing');

    // Aged backups at all three places, as earlier runs would have left them.
    const names = old.flatMap((n) => [`${n}.db.gz.enc`, `${n}.json`]);
    const touch = (d: string) =>
      `mkdir -p ${d} && cd ${d} && for f in ${names.join(' ')}; do echo old > "$f"; done`;
    assert.equal((await hosts[0]!.exec(touch(LOCAL))).code, 0);
    assert.equal((await hosts[1]!.exec(touch(DEST))).code, 0);
    // Asynchronously: the S3 server runs in this process.
    for (const n of names)
      await execFileAsync('curl', [
        '-sS',
        '--fail',
        '--user',
        'S3RVER:S3RVER',
        '--aws-sigv4',
        'aws:amz:us-east-1:s3',
        '-H',
        'x-amz-content-sha256: UNSIGNED-PAYLOAD',
        '--data-binary',
        'old',
        '-X',
        'PUT',
        `${s3!.endpoint}/etcd/edge-a/${n}`,
      ]);

    // bravo's member leads, and bravo is no backup host: edge-1, the first backup host whose
    // member answers, takes the backup.
    const live = liveCluster(await connectionFor(await loadCluster(join(dir, 'k3s-etcd.yaml'))));
    const table = await live.probe();
    const leader = table.find((m) => m.isLeader)!;
    if (leader.name !== 'bravo')
      await live.moveLeader(
        leader,
        table.find((m) => m.name === 'bravo')!,
      );
    assert.equal((await live.probe()).find((m) => m.isLeader)?.name, 'bravo');
    const run = await cli(['backup', 'run']);
    assert.equal(run.code, 0, run.text);
    assert.match(
      run.text,
      /\[edge-1\] done: saved lab-\d{8}T\d{6}Z\.db\.gz\.enc \(revision \d+, 30 keys\)/,
    );

    const local = (await hosts[0]!.exec(`ls -1 ${LOCAL}`)).stdout.split('\n').filter(Boolean);
    const file = local.find((f) => f.endsWith('.db.gz.enc') && !old.some((o) => f.startsWith(o)));
    assert.ok(file, local.join(' '));
    const base = file.slice(0, -'.db.gz.enc'.length);
    const all = [...old, base];
    const pruned = toPrune(
      all.map((n) => `${n}.db.gz.enc`),
      KEEP,
    ).map((f) => f.slice(0, -'.db.gz.enc'.length));
    assert.ok(
      pruned.length > 0 && pruned.length < old.length,
      `the case prunes some: ${pruned.join(' ')}`,
    );
    const kept = all.filter((n) => !pruned.includes(n)).sort();
    const backupsIn = (list: string[]) =>
      list
        .filter((f) => f.endsWith('.db.gz.enc'))
        .map((f) => f.slice(0, -'.db.gz.enc'.length))
        .sort();
    assert.deepEqual(backupsIn(local), kept, 'on edge-1');
    const onBravo = (await hosts[1]!.exec(`ls -1 ${DEST}`)).stdout.split('\n').filter(Boolean);
    assert.deepEqual(backupsIn(onBravo), kept, 'on bravo');
    const inS3 = (await s3!.keys('edge-a/')).map((k) => k.slice('edge-a/'.length));
    assert.deepEqual(backupsIn(inS3), kept, 'in S3');
    for (const list of [local, onBravo, inS3])
      assert.ok(
        !list.some((f) => pruned.some((p) => f.startsWith(p))),
        'a pruned backup takes its record along',
      );

    // Encrypted: the bytes hold neither a key name nor bbolt's magic.
    const bytes = Buffer.from(
      (await hosts[1]!.exec(`base64 -w0 ${DEST}/${file}`)).stdout,
      'base64',
    );
    assert.equal(bytes.subarray(0, 8).toString('latin1'), 'Salted__');
    assert.equal(bytes.includes(Buffer.from('/registry/secrets')), false);
    assert.equal(bytes.includes(Buffer.from([0xed, 0xda, 0x0c, 0xed])), false);

    // The off-host copy decrypts, with the private key kept outside the workspace, to the
    // snapshot its record describes.
    const record = parseBackupRecord((await hosts[1]!.exec(`cat ${DEST}/${base}.json`)).stdout);
    assert.ok(isRecord(record), JSON.stringify(record));
    assert.equal(record.keys, KEYS);
    await writeFile(join(keys, file), bytes);
    const plain = join(keys, 'snapshot.db');
    const got = await decryptBackup(
      join(keys, file),
      plain,
      record,
      await readFile(privateKey, 'utf8'),
    );
    assert.equal(got.sha256, record.sha256);
    const status = JSON.parse(
      execFileSync('etcdctl', ['snapshot', 'status', plain, '-w', 'json']).toString(),
    ) as { revision: number };
    assert.equal(status.revision, record.revision);
  });

  it('status lists the backup and its copies; an aged record turns it to failure', async () => {
    const s = await cli(['backup', 'status', '--json']);
    assert.equal(s.code, 0, s.text);
    const st = cliJson(s.text) as {
      fresh: boolean;
      backups: Array<{
        file: string;
        keys: number;
        encrypted: boolean;
        recipients: string[];
        copies: Array<{ to: string; ok: boolean }>;
      }>;
    };
    assert.equal(st.fresh, true);
    const newest = st.backups[0]!;
    assert.equal(newest.keys, KEYS);
    // Encrypted, as its record says: the passphrase wrapped for the one key keygen made (the
    // bytes themselves were seen to be ciphertext above).
    const recipient = createHash('sha256')
      .update(
        createPublicKey(await readFile(join(dir, 'backup-recipients.pem'), 'utf8')).export({
          type: 'spki',
          format: 'der',
        }),
      )
      .digest('hex');
    assert.deepEqual(newest.recipients, [recipient]);
    assert.equal(newest.encrypted, true);
    assert.deepEqual(
      newest.copies.map((c) => [c.to, c.ok]),
      [
        [`host:root@${ADDR[1]}:${DEST}`, true],
        [`s3:${s3!.endpoint}/etcd/edge-a/`, true],
      ],
    );
    // The timer stopped and three hours passed: the newest record says so, not the clock.
    const base = newest.file.slice(0, -'.db.gz.enc'.length);
    const back = new Date(Date.now() - 3 * 3_600_000).toISOString().slice(0, 19) + 'Z';
    const edit = await hosts[0]!.exec(
      `systemctl stop k3s-etcd-backup.timer && sed -i 's/"takenAt":"[^"]*"/"takenAt":"${back}"/' ${LOCAL}/${base}.json`,
    );
    assert.equal(edit.code, 0, edit.stderr);
    const stale = await cli(['backup', 'status']);
    assert.equal(stale.code, 1, stale.text);
    assert.match(
      stale.text,
      /Not fresh:\n {2}- the newest backup \(.*, on edge-1\) is 3 hours old: more than twice the interval \(1h\)/,
    );
  });

  it('a drill passes from the off-host copy, fails on a damaged one (and status says so); the S3 copy restores the cluster', async () => {
    const identity = join(keys, 'backup.key');
    const pass = await cli(['backup', 'drill', '--identity', identity]);
    assert.equal(pass.code, 0, pass.text);
    assert.match(
      pass.text,
      /PASS: lab-\d{8}T\d{6}Z\.db\.gz\.enc: restored from bravo into a throwaway etcd: \d+ keys at revision \d+, as recorded/,
    );

    // One byte of the copy on bravo changes: the drill fails, naming the damage.
    const newest = (await hosts[1]!.exec(`ls -1t ${DEST} | grep 'enc$' | head -n 1`)).stdout.trim();
    const flip = await hosts[1]!.exec(
      `printf 'X' | dd of=${DEST}/${newest} bs=1 seek=200 conv=notrunc 2>/dev/null`,
    );
    assert.equal(flip.code, 0);
    const fail = await cli(['backup', 'drill', '--identity', identity, '--from', 'bravo']);
    assert.equal(fail.code, 1, fail.text);
    assert.match(
      fail.text,
      /FAIL: .*the copy of .* at bravo is damaged: its SHA-256 is [0-9a-f]{64}, the record says [0-9a-f]{64}/,
    );
    const status = await cli(['backup', 'status']);
    assert.equal(status.code, 1);
    assert.match(status.text, /the last drill \(.*\) failed: the copy of .* at bravo is damaged/);
    const asJson = await cli(['backup', 'status', '--json']);
    assert.equal(asJson.code, 1);
    const { lastDrill } = cliJson(asJson.text) as {
      lastDrill?: { file: string; ok: boolean; detail: string };
    };
    assert.equal(lastDrill?.ok, false, asJson.text);
    assert.equal(lastDrill.file, newest);
    assert.match(lastDrill.detail, /the copy of .* at bravo is damaged/);

    // The whole cluster back from the copy in S3, with the existing restore.
    const fetched = await cli([
      'backup',
      'fetch',
      '--identity',
      identity,
      '--from',
      's3',
      '--json',
    ]);
    assert.equal(fetched.code, 0, fetched.text);
    const info = cliJson(fetched.text) as { file: string };
    const cluster = await loadCluster(join(dir, 'k3s-etcd.yaml'));
    const conn = await connectionFor(cluster);
    const c = await createEndpointClient(conn.endpoints[0]!, { tls: conn.tls, timeoutMs: 10_000 });
    try {
      await c.put('/registry/secrets/default/after-backup').value('later');
    } finally {
      c.close();
    }
    const restore = await cli(['snapshot', 'restore', '--file', info.file, '--yes']);
    assert.equal(restore.code, 0, restore.text);
    const c2 = await createEndpointClient(conn.endpoints[0]!, { tls: conn.tls, timeoutMs: 10_000 });
    try {
      assert.equal(await c2.getAll().prefix('/registry/secrets/default/').count(), KEYS);
      assert.equal(await c2.get('/registry/secrets/default/s7').string(), 'top-secret-7');
    } finally {
      c2.close();
    }
  });

  it("the timer warns ahead about the host's certificates: in its journal, last-run.json and status", async () => {
    // The lab's certificates run for decades: a warning window longer than that makes every one
    // of edge-1's due, as a certificate a few weeks from its end would be with the default 30.
    const env = await hosts[0]!.exec(`echo CERT_WARN_DAYS=100000 >> ${BACKUP_ENV}`);
    assert.equal(env.code, 0, env.stderr);
    try {
      const run = await cli(['backup', 'run']);
      assert.equal(run.code, 0, run.text);
      const last = JSON.parse((await hosts[0]!.exec(`cat ${LOCAL}/last-run.json`)).stdout) as {
        certWarnings: string[];
      };
      const files = (
        await hosts[0]!.exec('ls -1 /etc/etcd/pki/*.pem | grep -v -- -key.pem$')
      ).stdout
        .split('\n')
        .filter(Boolean);
      assert.ok(files.includes('/etc/etcd/pki/server.pem'), files.join());
      assert.deepEqual(
        last.certWarnings.map((w) => w.split(' ')[1]).sort(),
        [...files].sort(),
        'one warning per certificate file, none for a key',
      );
      for (const w of last.certWarnings)
        assert.match(
          w,
          /^certificate \S+ on edge-1 ends \w{3} +\d+ [\d:]+ \d{4} GMT: within 100000 days; renew it \(k3s-etcd certs renew\)$/,
        );
      const journal = await hosts[0]!.exec(
        'journalctl -u k3s-etcd-backup.service --no-pager -o cat | grep -c "warning: certificate /etc/etcd/pki/server.pem"',
      );
      assert.ok(Number(journal.stdout.trim()) >= 1, journal.stdout + journal.stderr);
      const status = await cli(['backup', 'status']);
      assert.match(
        status.text,
        /Warned by the timer:\n {2}- certificate \/etc\/etcd\/pki\/\S+\.pem on edge-1 ends .* within 100000 days/,
      );
    } finally {
      await hosts[0]!.exec(`sed -i '/^CERT_WARN_DAYS=/d' ${BACKUP_ENV}`);
    }
    // With the default window (30 days) the same certificates are not due: no warning.
    const again = await cli(['backup', 'run']);
    assert.equal(again.code, 0, again.text);
    const quiet = await cli(['backup', 'status', '--json']);
    assert.deepEqual((cliJson(quiet.text) as { warnings: string[] }).warnings, []);
  });

  it('a copy that cannot be trusted fails the run, named in its record', async () => {
    const last = async () =>
      JSON.parse((await hosts[0]!.exec(`cat ${LOCAL}/last-run.json`)).stdout) as {
        result: string;
        summary: string;
        lines: string[];
      };
    const receiver = '/usr/local/sbin/k3s-etcd-backup-receive';
    // The S3 credentials readable by every user of the host: not used. Bravo's receiver keeps
    // only the first 64 bytes of what it is sent and says it stored them: that copy does not
    // read back as sent.
    assert.equal((await hosts[0]!.exec('chmod 644 /etc/k3s-etcd/s3.env')).code, 0);
    const broken = await hosts[1]!.exec(
      `cp -p ${receiver} ${receiver}.orig && sed -i 's|cat >"$DIR/.$name.part"|{ head -c 64; cat >/dev/null; } >"$DIR/.$name.part"|' ${receiver} && grep -c 'head -c 64' ${receiver}`,
    );
    assert.equal(broken.stdout.trim(), '1', broken.stdout + broken.stderr);
    try {
      const run = await cli(['backup', 'run']);
      assert.equal(run.code, 1, run.text);
      const r = await last();
      assert.equal(r.result, 'failed');
      assert.match(
        r.summary,
        new RegExp(`copies failed: root@${ADDR[1]}:${DEST} s3:${s3!.endpoint}/etcd/edge-a/$`),
      );
      assert.ok(
        r.lines.includes(
          `copy to s3:${s3!.endpoint}/etcd/edge-a/ failed: /etc/k3s-etcd/s3.env is mode 644 and owned by uid 0: it must be mode 600 and owned by uid 0 (chmod 600 /etc/k3s-etcd/s3.env; chown 0 /etc/k3s-etcd/s3.env)`,
        ),
        r.lines.join('\n'),
      );
      const file = /saved (\S+\.db\.gz\.enc)/.exec(r.summary)![1]!;
      const record = parseBackupRecord(
        (await hosts[0]!.exec(`cat ${LOCAL}/${file.replace(/\.db\.gz\.enc$/, '.json')}`)).stdout,
      );
      assert.ok(isRecord(record), JSON.stringify(record));
      const truncated = (
        await hosts[1]!.exec(`sha256sum ${DEST}/${file} | cut -c1-64`)
      ).stdout.trim();
      assert.ok(
        r.lines.includes(
          `copy to root@${ADDR[1]}:${DEST} failed: the SHA-256 of ${file} there is ${truncated}, not ${record.encryptedSha256}`,
        ),
        r.lines.join('\n'),
      );
      const st = cliJson((await cli(['backup', 'status', '--json'])).text) as {
        backups: Array<{ file: string; copies: Array<{ to: string; ok: boolean }> }>;
      };
      assert.deepEqual(
        st.backups.find((b) => b.file === file)?.copies.map((c) => c.ok),
        [false, false],
      );
    } finally {
      await hosts[0]!.exec('chmod 600 /etc/k3s-etcd/s3.env');
      await hosts[1]!.exec(`mv -f ${receiver}.orig ${receiver}`);
    }
    const again = await cli(['backup', 'run']);
    assert.equal(again.code, 0, again.text);
  });

  it('--remove takes away all the install put there; the backups and the credentials stay', async () => {
    const r = await cli(['backup', 'install', '--remove', '--yes']);
    assert.equal(r.code, 0, r.text);
    const gone = [
      '/etc/systemd/system/k3s-etcd-backup.timer',
      '/etc/systemd/system/k3s-etcd-backup.service',
      '/usr/local/sbin/k3s-etcd-backup',
      BACKUP_ENV,
      '/etc/k3s-etcd/backup-recipients',
      '/etc/k3s-etcd/backup_id_ed25519',
      '/etc/k3s-etcd/backup_id_ed25519.pub',
      '/etc/k3s-etcd/backup_known_hosts',
    ];
    const left = await hosts[0]!.exec(
      `for f in ${gone.join(' ')}; do [ ! -e "$f" ] || echo "$f"; done`,
    );
    assert.equal(left.stdout, '', 'left on edge-1');
    const e1 = await hosts[0]!.exec(
      `test -f /etc/k3s-etcd/s3.env && ls ${LOCAL} | grep -c '\\.db\\.gz\\.enc$'`,
    );
    assert.equal(e1.code, 0, e1.stderr);
    assert.ok(Number(e1.stdout.trim()) > 0);
    const b = await hosts[1]!.exec(
      `! grep -q k3s-etcd-backup-receive /root/.ssh/authorized_keys && test ! -e /usr/local/sbin/k3s-etcd-backup-receive && ls ${DEST} | grep -c enc`,
    );
    assert.equal(b.code, 0, b.stdout + b.stderr);
    const again = await cli(['backup', 'install', '--remove', '--dry-run']);
    assert.equal(again.code, 0, again.text);
    assert.doesNotMatch(again.text, /would-change/, 'a second removal changes nothing');
  });
});
