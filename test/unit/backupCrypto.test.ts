/**
 * The backups' encryption is openssl's: a backup the hosts make with `openssl enc` and
 * `openssl pkeyutl` decrypts here (streaming, the plain SHA-256 checked against the record), and
 * the hand-restore the README gives (openssl alone) reads one made here. Recipients must be RSA
 * keys of 3072 bits or more; a record from a host is parsed as hostile input.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  decryptBackup,
  encryptBackup,
  makeKeyPair,
  parseRecipients,
} from '../../src/core/backup/crypto';
import { BACKUP_FORMAT, parseBackupRecord, type BackupRecord } from '../../src/core/backup/record';

describe('backup encryption', () => {
  let dir = '';
  let pair: Awaited<ReturnType<typeof makeKeyPair>>;
  let other: typeof pair;
  before(async () => {
    [pair, other] = await Promise.all([makeKeyPair(), makeKeyPair()]);
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-backup-crypto-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a key pair is made off the main thread: the event loop (the whole extension host) keeps running', async () => {
    let turns = 0;
    let going = true;
    const spin = () => {
      if (!going) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const made = await makeKeyPair();
    going = false;
    assert.match(made.publicPem, /^-----BEGIN PUBLIC KEY-----/);
    assert.ok(turns > 0, 'the event loop turned while the primes were searched');
  });

  const plainRecord = (data: Buffer): BackupRecord => ({
    format: BACKUP_FORMAT,
    cluster: 'lab',
    host: 'edge-1',
    member: 'edge-1',
    takenAt: '2026-12-06T03:00:00Z',
    revision: 42,
    keys: 7,
    size: data.length,
    sha256: createHash('sha256').update(data).digest('hex'),
    file: 'lab-20261206T030000Z.db.gz.enc',
    encryptedSize: 0,
    encryptedSha256: '0'.repeat(64),
    recipients: [],
  });

  it('openssl on a host encrypts, this side decrypts with either recipient; another key is refused', async () => {
    const data = randomBytes(300_000);
    const plain = join(dir, 'snap.db');
    await writeFile(plain, data);
    const recipients = parseRecipients(pair.publicPem + other.publicPem, 'r.pem');
    await writeFile(join(dir, 'r1.pem'), recipients[0]!.pem);
    await writeFile(join(dir, 'r2.pem'), recipients[1]!.pem);
    // What the host script runs.
    const sh = `set -e; cd ${dir}
openssl rand -hex 32 > pass
gzip -c snap.db | openssl enc -aes-256-ctr -pbkdf2 -iter 10000 -md sha256 -salt -pass file:pass -out x.enc
for r in r1.pem r2.pem; do tr -d '\\n' < pass | openssl pkeyutl -encrypt -pubin -inkey $r -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 | base64 -w0; echo; done > wrapped`;
    execFileSync('sh', ['-c', sh]);
    const wrapped = (await readFile(join(dir, 'wrapped'), 'utf8')).trim().split('\n');
    const record = {
      ...plainRecord(data),
      recipients: recipients.map((r, i) => ({ fingerprint: r.fingerprint, key: wrapped[i]! })),
    };
    for (const key of [pair.privatePem, other.privatePem]) {
      const out = join(dir, 'out.db');
      const got = await decryptBackup(join(dir, 'x.enc'), out, record, key);
      assert.equal(got.sha256, record.sha256);
      assert.deepEqual(await readFile(out), data);
    }
    await assert.rejects(
      decryptBackup(
        join(dir, 'x.enc'),
        join(dir, 'no.db'),
        record,
        (await makeKeyPair()).privatePem,
      ),
      /none of the backup's recipients/,
    );
    // A damaged copy: the record's SHA-256 says so.
    const enc = await readFile(join(dir, 'x.enc'));
    enc[enc.length - 10] = enc[enc.length - 10]! ^ 0xff;
    await writeFile(join(dir, 'bad.enc'), enc);
    await assert.rejects(
      decryptBackup(join(dir, 'bad.enc'), join(dir, 'bad.db'), record, pair.privatePem),
      /does not decrypt to a snapshot \(incorrect data check\): the backup is damaged/,
    );
  });

  it("the README's hand restore (openssl alone) reads a backup made here", async () => {
    const data = randomBytes(100_000);
    const plain = join(dir, 'snap2.db');
    await writeFile(plain, data);
    const enc = await encryptBackup(
      plain,
      join(dir, 'y.enc'),
      parseRecipients(pair.publicPem, 'r'),
    );
    await writeFile(join(dir, 'backup.key'), pair.privatePem, { mode: 0o600 });
    const sh = `set -e; cd ${dir}
printf '%s' '${enc.recipients[0]!.key}' | base64 -d | openssl pkeyutl -decrypt -inkey backup.key -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 > pass2
openssl enc -d -aes-256-ctr -pbkdf2 -iter 10000 -md sha256 -pass file:pass2 -in y.enc | gunzip > restored.db
sha256sum restored.db | cut -c1-64`;
    const sha = execFileSync('sh', ['-c', sh], { encoding: 'utf8' }).trim();
    assert.equal(sha, createHash('sha256').update(data).digest('hex'));
    assert.equal(
      enc.encryptedSha256,
      createHash('sha256')
        .update(await readFile(join(dir, 'y.enc')))
        .digest('hex'),
    );
  });

  it('recipients must be RSA keys of 3072 bits or more', () => {
    assert.throws(() => parseRecipients('nothing here', 'r.pem'), /holds no PEM public key/);
    const small = execFileSync('sh', [
      '-c',
      'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -pubout',
    ]).toString();
    assert.throws(() => parseRecipients(small, 'r.pem'), /RSA key of 3072 bits or more/);
    const ec = execFileSync('sh', [
      '-c',
      'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | openssl pkey -pubout',
    ]).toString();
    assert.throws(
      () => parseRecipients(ec, 'r.pem'),
      /RSA key of 3072 bits or more is needed \(this one is ec\)/,
    );
    assert.equal(parseRecipients(pair.publicPem, 'r.pem')[0]!.bits, 4096);
  });

  it('a record from a host is read field by field', () => {
    const good = {
      ...plainRecord(Buffer.from('x')),
      recipients: [{ fingerprint: 'a'.repeat(64), key: 'QUJD'.repeat(10) }],
    };
    const ok = parseBackupRecord(JSON.stringify({ ...good, extra: 'dropped' }));
    assert.deepEqual(ok, good);
    for (const [field, value] of [
      ['file', '../../etc/passwd'],
      ['host', 'a b'],
      ['revision', -1],
      ['sha256', 'zz'],
      ['takenAt', 'now'],
      ['recipients', []],
    ] as const)
      assert.match(
        (parseBackupRecord(JSON.stringify({ ...good, [field]: value })) as { problem: string })
          .problem,
        new RegExp(field),
      );
  });
});
