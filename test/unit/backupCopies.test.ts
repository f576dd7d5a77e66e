/**
 * The copies off the host, the hosts' own `sh` run here: the S3 credentials file is used only
 * when it is the timer user's and no one else's (0600); a copy counts only when it reads back as
 * sent (the receiver's `put` prints the stored file's SHA-256; an S3 HEAD's Content-Length); the
 * S3 keys are listed page after page with continuation tokens, not only the first 1000.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BACKUP_COPY_HELPERS, RECEIVER_SCRIPT } from '../../src/core/backup/hostScript';

/** `sh -c` over the helpers, `body` after them; stdout, and stderr for failures. */
function sh(helpers: string, body: string, env: Record<string, string> = {}) {
  const r = spawnSync('sh', ['-c', `${helpers}\n${body}`], {
    encoding: 'utf8',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('backup copies: the S3 credentials file', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-copies-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const uid = process.getuid?.() ?? 0;
  const problem = (file: string) =>
    sh(BACKUP_COPY_HELPERS, `creds_problem "$F"`, { F: file }).trim();

  it("0600 (or 0400) and the timer user's: used", () => {
    const f = join(dir, 's3.env');
    writeFileSync(f, 'AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n');
    chmodSync(f, 0o600);
    assert.equal(problem(f), '');
    chmodSync(f, 0o400);
    assert.equal(problem(f), '');
  });

  it('readable by others, or another owner: refused, naming the file and what to do', () => {
    const f = join(dir, 'open.env');
    writeFileSync(f, 'AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n');
    for (const mode of [0o644, 0o640, 0o660, 0o604, 0o700]) {
      chmodSync(f, mode);
      assert.equal(
        problem(f),
        `${f} is mode ${mode.toString(8)} and owned by uid ${uid}: it must be mode 600 and owned by uid ${uid} (chmod 600 ${f}; chown ${uid} ${f})`,
      );
    }
    assert.equal(
      problem(join(dir, 'missing.env')),
      `${join(dir, 'missing.env')} is not there (or not a file)`,
    );
    if (uid === 0) {
      chmodSync(f, 0o600);
      chownSync(f, 65534, 65534);
      assert.match(
        problem(f),
        /is mode 600 and owned by uid 65534: it must be mode 600 and owned by uid 0/,
      );
    }
  });
});

describe('backup copies: read back before they count', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-readback-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the receiver's put stores the bytes and prints their SHA-256", () => {
    const receiver = join(dir, 'receive');
    writeFileSync(receiver, RECEIVER_SCRIPT);
    const bytes = randomBytes(70_000);
    const name = 'lab-20260318T120000Z.db.gz.enc';
    const r = spawnSync('sh', [receiver, dir], {
      input: bytes,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SSH_ORIGINAL_COMMAND: `put ${name}` },
    });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString(), `${createHash('sha256').update(bytes).digest('hex')}\n`);
    assert.deepEqual(readFileSync(join(dir, name)), bytes);
  });

  it('readback: silent when equal, else what came back and what was sent', () => {
    const rb = (got: string, want: string) =>
      sh(BACKUP_COPY_HELPERS, 'readback "$G" "$W" "the SHA-256 of f"', { G: got, W: want });
    const a = 'a'.repeat(64);
    assert.equal(rb(a, a), '');
    assert.equal(rb('b'.repeat(64), a), `the SHA-256 of f there is ${'b'.repeat(64)}, not ${a}\n`);
    // An older receiver prints nothing; a hostile one cannot flood the record.
    assert.equal(rb('', a), `the SHA-256 of f there is unknown (nothing came back), not ${a}\n`);
    assert.equal(
      rb(`${'x'.repeat(500)}\nmore`, a),
      `the SHA-256 of f there is ${'x'.repeat(80)}, not ${a}\n`,
    );
  });

  it("content_length: an S3 HEAD's size, HTTP/1.1 or HTTP/2", () => {
    const len = (headers: string) =>
      sh(BACKUP_COPY_HELPERS, 'printf "%s" "$H" | content_length', { H: headers });
    assert.equal(
      len(
        'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 123456\r\nETag: "x"\r\n\r\n',
      ),
      '123456\n',
    );
    assert.equal(len('HTTP/2 200\r\ncontent-length: 42\r\n\r\n'), '42\n');
    assert.equal(len('HTTP/1.1 404 Not Found\r\n\r\n'), '');
  });
});

describe('backup copies: every S3 key, page after page', () => {
  // A bucket of 2,500 keys served 1000 a page, as ListObjectsV2 does: the token names where the
  // next page starts. `s3` (curl with SigV4 in the script) is stood in for; each call is noted.
  const all = Array.from(
    { length: 2500 },
    (_v, i) =>
      `edge-a/lab-2026${String(1 + (i % 12)).padStart(2, '0')}01T${String(i).padStart(6, '0')}Z.db.gz.enc`,
  ).sort();
  const stub = (failAt = 0) => `s3() {
  echo "s3 $*" >&3
  at=0
  for a in "$@"; do case $a in continuation-token=*) at=\${a#continuation-token=} ;; esac; done
  [ "$at" = ${failAt || 'none'} ] && { echo 'curl: (22) The requested URL returned error: 500' >&2; return 22; }
  end=$((at + 1000)); [ "$end" -gt ${all.length} ] && end=${all.length}
  printf '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>etcd</Name><Prefix>edge-a/</Prefix><KeyCount>%s</KeyCount>' $((end - at))
  sed -n "$((at + 1)),\${end}p" "$KEYS" | while read -r k; do printf '<Contents><Key>%s</Key><Size>3</Size></Contents>' "$k"; done
  if [ "$end" -lt ${all.length} ]; then printf '<IsTruncated>true</IsTruncated><NextContinuationToken>%s</NextContinuationToken>' "$end"
  else printf '<IsTruncated>false</IsTruncated>'; fi
  printf '</ListBucketResult>'
}
`;
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-s3keys-'));
    writeFileSync(join(dir, 'keys'), all.join('\n') + '\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const list = (failAt?: number) =>
    spawnSync(
      'sh',
      [
        '-c',
        `${stub(failAt)}${BACKUP_COPY_HELPERS}\nexec 3>&2\ns3_keys http://s3.test/etcd edge-a/`,
      ],
      {
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', KEYS: join(dir, 'keys') },
      },
    );

  it('lists all 2,500 keys in three pages, the query in the order SigV4 signs it', () => {
    const r = list();
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n').filter(Boolean), all);
    assert.deepEqual(
      r.stderr.split('\n').filter((l) => l.startsWith('s3 ')),
      [
        's3 -G http://s3.test/etcd --data-urlencode list-type=2 --data-urlencode prefix=edge-a/',
        's3 -G http://s3.test/etcd --data-urlencode continuation-token=1000 --data-urlencode list-type=2 --data-urlencode prefix=edge-a/',
        's3 -G http://s3.test/etcd --data-urlencode continuation-token=2000 --data-urlencode list-type=2 --data-urlencode prefix=edge-a/',
      ],
    );
  });

  it('a page that cannot be read fails the listing (the run then prunes nothing there)', () => {
    const r = list(2000);
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 2000);
  });
});
