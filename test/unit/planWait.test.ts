/**
 * A wait step with a crash-loop guard, run by a real `sh` with a stand-in `systemctl` that plays
 * a recorded sequence of SubStates (and an instant `sleep`): a unit that enters auto-restart
 * three times stops the wait at once with its own message and the journal; two exits and then
 * active is a pass; without the guard only the timeout stops it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { renderScript } from '../../src/core/plan/render';
import type { WaitStep } from '../../src/core/plan/steps';

const dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-plan-wait-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs one wait step; `states` are what `systemctl show -p SubState` says, call by call. */
function run(
  step: WaitStep,
  states: string[],
  activeAfter = Infinity,
): { code: number; out: string } {
  const bin = mkdtempSync(join(dir, 'bin-'));
  writeFileSync(join(bin, 'states'), states.join('\n') + '\n');
  writeFileSync(join(bin, 'calls'), '0\n');
  writeFileSync(
    join(bin, 'systemctl'),
    `#!/bin/sh\nn=$(cat ${bin}/calls); echo $((n + 1)) > ${bin}/calls\nsed -n "$((n + 1))p" ${bin}/states\n`,
    { mode: 0o755 },
  );
  writeFileSync(join(bin, 'sleep'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  // Active once systemctl was asked `activeAfter` times.
  const check = `[ "$(cat ${bin}/calls)" -ge ${Number.isFinite(activeAfter) ? activeAfter : 1_000_000} ]`;
  const script = renderScript({
    host: 'edge-1',
    title: 'wait test',
    steps: [{ ...step, check }],
    payloads: [],
  });
  try {
    const out = execFileSync('sh', ['-c', script], {
      env: { PATH: `${bin}:/usr/bin:/bin` },
      encoding: 'utf8',
    });
    return { code: 0, out };
  } catch (err) {
    const e = err as { status: number; stdout: string };
    return { code: e.status, out: e.stdout };
  }
}

const base: WaitStep = {
  kind: 'wait',
  id: 'active',
  title: 'etcd is active',
  check: 'false',
  seconds: 30,
  onTimeout: 'echo JOURNAL TAIL',
  message: '"etcd did not become active within 30 s"',
};
const guarded: WaitStep = {
  ...base,
  crashLoop: { unit: 'etcd', times: 3, message: '"etcd exited 3 times since it was started"' },
};

describe('a wait with a crash-loop guard', () => {
  it('stops at the third exit, with its own message and the journal, long before the timeout', () => {
    // One exit seen over two polls counts once; three distinct ones stop the wait.
    const r = run(guarded, [
      'running',
      'auto-restart',
      'auto-restart',
      'start',
      'running',
      'auto-restart',
      'start',
      'auto-restart',
      'running',
    ]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /JOURNAL TAIL\n<== 1\/1 failed: etcd exited 3 times since it was started/);
    assert.doesNotMatch(r.out, /within 30 s/);
  });

  it('two exits and then active: a pass', () => {
    const r = run(guarded, ['auto-restart', 'start', 'auto-restart', 'start', 'running'], 5);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /<== 1\/1 ok/);
  });

  it('without the guard, only the timeout stops it', () => {
    const r = run({ ...base, seconds: 8 }, Array(20).fill('auto-restart'));
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /JOURNAL TAIL\n<== 1\/1 failed: etcd did not become active within 30 s/);
  });
});
