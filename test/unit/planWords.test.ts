/**
 * What the plans and their neighbours say to a person: a dry run never calls a check it could
 * not run "passing" (the script run by dash with systemctl stubbed, then the preview's words),
 * the progress line names the step out of the total, a member-list failure reads as one line
 * with its reasons, and certificate writes are counted as the tree counts them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listMembers, oneLineReason } from '../../src/core/etcd/members';
import { writtenText } from '../../src/core/pki/store';
import { renderScript } from '../../src/core/plan/render';
import {
  runHostPlan,
  summarizeRun,
  uploadProgress,
  type HostTransport,
  type StepOutcome,
} from '../../src/core/plan/runner';
import type { HostPlan, Step } from '../../src/core/plan/steps';
import { planPreviewMarkdown, stepProgressText, stepVerdict } from '../../src/core/plan/words';
import type { ExecOptions, ExecResult } from '../../src/core/ssh/types';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';

/** Runs commands with the local /bin/sh (dash on Debian), as the SSH runner runs them on a host. */
function localShell(env: Record<string, string>): HostTransport {
  return {
    label: 'local',
    exec: (command: string, opts: ExecOptions = {}) =>
      new Promise<ExecResult>((resolve, reject) => {
        const child = spawn('/bin/sh', ['-c', command], { env: { ...process.env, ...env } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
          opts.onStdout?.(c.toString());
        });
        child.stderr.on('data', (c: Buffer) => {
          stderr += c.toString();
          opts.onStderr?.(c.toString());
        });
        child.on('error', reject);
        child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
        child.stdin.end(opts.stdin ?? '');
      }),
    put: () => Promise.reject(new Error('no uploads in this test')),
    close: () => undefined,
  };
}

describe('a dry run on a host without etcd: the checks after the start are not "passing"', () => {
  let dir = '';
  let env: Record<string, string>;
  /** The tail of an etcd member plan: its unit, the service, the two waits. */
  const plan = (healthy: string): HostPlan => {
    const steps: Step[] = [
      {
        kind: 'command',
        id: 'unit',
        title: 'systemd unit /etc/systemd/system/etcd.service',
        check: `[ -f ${dir}/unit ]`,
        run: `touch ${dir}/unit`,
      },
      {
        kind: 'service',
        id: 'service',
        title: 'enable and start etcd',
        unit: 'etcd',
        restartOn: ['unit'],
        unitFileStep: 'unit',
      },
      {
        kind: 'wait',
        id: 'active',
        title: 'etcd is active (a new cluster waits for its quorum)',
        check: 'systemctl is-active -q etcd',
        seconds: 2,
        onTimeout: 'true',
        message: '"etcd did not become active"',
      },
      {
        kind: 'wait',
        id: 'healthy',
        title: 'etcd answers healthy on https://127.0.1.63:2379 over mutual TLS',
        check: healthy,
        seconds: 2,
        onTimeout: 'true',
        message: '"etcd is active but not healthy"',
      },
    ];
    return { host: 'edge-3', title: 'test', steps, payloads: [] };
  };
  const dryRun = async (p: HostPlan) => {
    const events: StepOutcome[] = [];
    const run = await runHostPlan(localShell(env), p, {
      dryRun: true,
      onStep: (_h, s) => events.push(s),
    });
    return { run, events };
  };

  before(async () => {
    dir = await makeTempDir('k3s-etcd-words-');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'systemctl'),
      `#!/bin/sh\ncase "$1" in\n  is-enabled|is-active) [ -f ${dir}/active ] ;;\n  *) touch ${dir}/active ;;\nesac\n`,
    );
    chmodSync(join(bin, 'systemctl'), 0o755);
    env = { PATH: `${bin}:${process.env['PATH']}` };
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  it('after a step that would change, a wait is "after the change", never "check passes"', async () => {
    const { run, events } = await dryRun(plan('true'));
    assert.equal(run.status, 'would-change');
    assert.deepEqual(
      run.steps.map((s) => [s.n, s.status]),
      [
        [1, 'would-change'],
        [2, 'would-change'],
        [3, 'not-run'],
        [4, 'not-run'],
      ],
    );
    const words = run.steps.map((s) => stepVerdict(s));
    assert.deepEqual(words, [
      'will change',
      'will change',
      'after the change (not run in a dry run)',
      'after the change (not run in a dry run)',
    ]);
    const md = planPreviewMarkdown('Provisioning plan: etcd for cluster lab', [run], {
      apply: 'K3s etcd: Provision etcd',
      madeAt: '2025-01-01T00:00:00.000Z',
    });
    assert.match(md, /^## edge-3: would-change \(2 of 4 steps\)$/m);
    assert.match(
      md,
      /^\| 3 \| etcd is active \(a new cluster waits for its quorum\) \| after the change \(not run in a dry run\) \|$/m,
    );
    assert.match(
      md,
      /^\| 4 \| etcd answers healthy on .* \| after the change \(not run in a dry run\) \|$/m,
    );
    assert.doesNotMatch(md, /check passes/);
    // The progress line while it ran: the step out of the total, the title after it.
    const started = events
      .filter((e) => e.status === 'pending')
      .map((e) => stepProgressText('edge-3', e));
    assert.deepEqual(started, [
      'edge-3: step 1/4 systemd unit /etc/systemd/system/etcd.service',
      'edge-3: step 2/4 enable and start etcd',
      'edge-3: step 3/4 etcd is active (a new cluster waits for its quorum)',
      'edge-3: step 4/4 etcd answers healthy on https://127.0.1.63:2379 over mutual TLS',
    ]);
  });

  it('with nothing to change the checks are asked once: passing, or said not to pass', async () => {
    writeFileSync(join(dir, 'unit'), '');
    writeFileSync(join(dir, 'active'), '');
    const good = await dryRun(plan('true'));
    assert.equal(good.run.status, 'unchanged');
    assert.deepEqual(
      good.run.steps.map((s) => stepVerdict(s)),
      ['unchanged', 'unchanged', 'check passes', 'check passes'],
    );
    assert.equal(summarizeRun(good.run), 'edge-3: unchanged (4 steps checked)');

    // Up, nothing to change, but not healthy: the dry run says so and goes on (exit 0).
    const bad = await dryRun(plan('false'));
    assert.equal(bad.run.status, 'unchanged');
    assert.equal(
      stepVerdict(bad.run.steps[3]!),
      'FAILS: does not pass now, and no step before it would change anything',
    );
    assert.equal(
      summarizeRun(bad.run),
      'edge-3: unchanged (4 steps checked; 1 check does not pass)',
    );
  });

  it('the script still waits for real when it is not a dry run', () => {
    const s = renderScript(plan('true'));
    assert.match(s, /until systemctl is-active -q etcd; do/);
  });
});

describe('a member list nobody answered, in one line', () => {
  it("names each endpoint's reason and ends without a dangling colon", async () => {
    const err = await listMembers(['http://127.0.0.1:9', 'http://127.0.0.1:7'], {
      timeoutMs: 1000,
    }).then(
      () => assert.fail('nothing listens on ports 9 and 7'),
      (e: unknown) => e,
    );
    const line = oneLineReason(err);
    assert.equal(
      line,
      'connection refused by 127.0.0.1:9; connection refused by 127.0.0.1:7',
      'the note reads "(connection refused by …; …)", not "(No etcd endpoint answered the member list:)"',
    );
    // The full message keeps one line per endpoint with what to do (the CLI prints it).
    assert.match(
      (err as Error).message,
      /^No etcd endpoint answered the member list:\n {2}http:\/\/127\.0\.0\.1:9: connection refused by 127\.0\.0\.1:9\. etcd is not running/,
    );
    assert.equal(oneLineReason(new Error('Something failed:\n  because')), 'Something failed');
  });
});

describe('certificates written, counted as the tree counts them', () => {
  it('a whole set: 9 certificates and their keys, 18 files', () => {
    const leaves = ['edge-1', 'edge-2', 'edge-3'].flatMap((m) => [
      `${m}/server.pem`,
      `${m}/server-key.pem`,
      `${m}/peer.pem`,
      `${m}/peer-key.pem`,
    ]);
    const set = [
      'ca.pem',
      'ca-key.pem',
      ...leaves,
      'client/k3s.pem',
      'client/k3s-key.pem',
      'client/admin.pem',
      'client/admin-key.pem',
    ];
    assert.equal(set.length, 18);
    assert.equal(writtenText(set), '9 certificates and their keys (18 files)');
    assert.equal(writtenText(['ca.pem', 'ca-key.pem']), '1 certificate and its key (2 files)');
    assert.equal(writtenText(['edge-1/server.pem']), '1 certificate and 0 keys (1 file)');
  });
});

describe('the restart order in the rendered preview', () => {
  it('numbered members stay one numbered list under their heading, host text escaped', () => {
    const md = planPreviewMarkdown('Provisioning plan', [], {
      apply: 'K3s etcd: Provision etcd',
      madeAt: 'now',
      sections: [
        {
          heading: 'Restarts',
          lines: [
            'etcd restarts on 2 member(s), one at a time:',
            '  1. a (follower): restarts for environment /etc/etcd/etcd.env',
            '  2. <b> (leader): restarts for unit',
            'no restart on c: only files change there',
          ],
        },
        { heading: 'Empty', lines: [] },
      ],
    });
    assert.match(
      md,
      /## Restarts\n\n- etcd restarts on 2 member\(s\), one at a time:\n {3}1\. a \(follower\): restarts for environment \/etc\/etcd\/etcd\.env\n {3}2\. &lt;b&gt; \(leader\): restarts for unit\n- no restart on c/,
    );
    assert.doesNotMatch(md, /- 1\./, 'no bullet in front of a number');
    assert.doesNotMatch(md, /## Empty/, 'an empty section is left out');
  });
});

describe('a large upload says how far it is', () => {
  it('one line per tenth, in order, none for a small payload', () => {
    const lines: string[] = [];
    const big = uploadProgress((l) => lines.push(l), 'snapshot.db');
    const total = 30_000_000;
    for (let sent = 0; sent <= total; sent += 1_000_000) big(sent, total);
    big(total, total);
    assert.deepEqual(lines, [
      '    upload snapshot.db: 10% (3 MB of 30 MB)',
      '    upload snapshot.db: 20% (6 MB of 30 MB)',
      '    upload snapshot.db: 30% (9 MB of 30 MB)',
      '    upload snapshot.db: 40% (12 MB of 30 MB)',
      '    upload snapshot.db: 50% (15 MB of 30 MB)',
      '    upload snapshot.db: 60% (18 MB of 30 MB)',
      '    upload snapshot.db: 70% (21 MB of 30 MB)',
      '    upload snapshot.db: 80% (24 MB of 30 MB)',
      '    upload snapshot.db: 90% (27 MB of 30 MB)',
      '    upload snapshot.db: 100% (30 MB of 30 MB)',
    ]);
    const small: string[] = [];
    const few = uploadProgress((l) => small.push(l), 'env');
    few(1000, 2000);
    few(2000, 2000);
    assert.deepEqual(small, [], 'a small file is just "upload"');
  });
});
