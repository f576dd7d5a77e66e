/**
 * The copies off the host, the hosts' own `sh` run here: the S3 credentials file is used only
 * when it is the timer user's and no one else's (0600).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BACKUP_S3_HELPERS } from '../../src/core/backup/hostScript';

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
  const problem = (file: string) => sh(BACKUP_S3_HELPERS, `creds_problem "$F"`, { F: file }).trim();

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
