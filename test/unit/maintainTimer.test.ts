/**
 * The maintenance timer, pure parts: its script decides exactly as rule.ts does (the script's
 * own `--decide` run with sh over the same cases), its environment file refuses inventory values
 * that could break out of a line, the host plan renders to a script sh accepts, and the last-run
 * record read back from etcd is checked field by field. The timer itself runs on systemd hosts
 * in test/system/maintainQuota.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_DEFRAG_RULE, needsDefrag, type DefragRule } from '../../src/core/maintain/rule';
import { TIMER_SCRIPT } from '../../src/core/maintain/timerScript';
import { timerEnv, timerPlan, timerUnits } from '../../src/core/maintain/timer';
import { maintenanceRunLine, parseMaintenanceRecord } from '../../src/core/etcd/maintenanceRecord';
import { renderScript } from '../../src/core/plan/render';
import { K3sEtcdError } from '../../src/core/errors';
import { cluster, host } from '../fixtures/inventory';

const MiB = 1024 * 1024;

function withScript<T>(f: (file: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-timer-'));
  try {
    const file = join(dir, 'k3s-etcd-maintain');
    writeFileSync(file, TIMER_SCRIPT);
    return f(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const threeHosts = () =>
  cluster('/ws/pki', [
    host('edge-1', '10.0.0.1'),
    host('edge-2', '10.0.0.2'),
    host('edge-3', '10.0.0.3'),
  ]);

describe('the maintenance timer', () => {
  it('its script picks the same members as rule.ts, over the edges of every threshold', () => {
    const rules: DefragRule[] = [
      DEFAULT_DEFRAG_RULE,
      { ...DEFAULT_DEFRAG_RULE, freeShare: 0.3, minDbBytes: 4 * MiB, quotaShare: 0.6 },
    ];
    const quota = 2 * 1024 * MiB;
    const cases: Array<[number, number, number]> = [
      [20_480, 16_384, quota],
      [64 * MiB, 0, quota],
      [64 * MiB + 1, 0, quota],
      [100 * MiB, 50 * MiB, quota],
      [100 * MiB, 50 * MiB - 1, quota],
      [4 * MiB + 1, 1 * MiB, quota],
      [Math.floor(quota * 0.8), Math.floor(quota * 0.8), quota],
      [Math.floor(quota * 0.8) + 1, Math.floor(quota * 0.8), quota],
      [Math.floor(quota * 0.6) + 1, Math.floor(quota * 0.6), quota],
      [30 * MiB, 29 * MiB, 32 * MiB],
      [8 * 1024 * MiB, 8 * 1024 * MiB, 8 * 1024 * MiB],
    ];
    withScript((file) => {
      for (const rule of rules) {
        const env = timerEnv(threeHosts(), threeHosts().hosts[0]!, rule);
        const vars = Object.fromEntries(
          env
            .split('\n')
            .filter((l) => /^[A-Z_]+=/.test(l))
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
        for (const [db, inUse, q] of cases) {
          const out = execFileSync('sh', [file, '--decide', `${db}`, `${inUse}`, `${q}`], {
            env: { ...vars, PATH: process.env['PATH'] },
            encoding: 'utf8',
          });
          const ts = needsDefrag(
            { name: 'm', dbBytes: db, inUseBytes: inUse, quotaBytes: q },
            rule,
          );
          assert.equal(
            out.startsWith('defrag'),
            ts.needed,
            `db ${db}, in use ${inUse}, quota ${q}, rule ${JSON.stringify(rule)}: sh says "${out.trim()}", rule.ts "${ts.why}"`,
          );
        }
      }
    });
  });

  it('the environment file takes only names and URLs that cannot end a line or quote', () => {
    const c = threeHosts();
    const env = timerEnv(c, c.hosts[1]!, DEFAULT_DEFRAG_RULE);
    assert.match(env, /^NAMES=edge-1,edge-2,edge-3$/m);
    assert.match(
      env,
      /^ENDPOINTS=https:\/\/10\.0\.0\.1:2379,https:\/\/10\.0\.0\.2:2379,https:\/\/10\.0\.0\.3:2379$/m,
    );
    assert.match(env, /^LOCAL=https:\/\/10\.0\.0\.2:2379$/m);
    assert.match(env, /^HOST=edge-2$/m);
    assert.match(env, /^FREE_PERMILLE=500$/m);
    assert.match(env, /^QUOTA_PERMILLE=800$/m);
    for (const bad of ['edge-1\nEXTRA=1', 'edge $(id)', "edge'1", 'edge"1']) {
      const hostile = cluster('/ws/pki', [host(bad, '10.0.0.1'), host('edge-2', '10.0.0.2')]);
      assert.throws(
        () => timerEnv(hostile, hostile.hosts[1]!, DEFAULT_DEFRAG_RULE),
        (e: unknown) =>
          e instanceof K3sEtcdError && /cannot go into the maintenance timer/.test(e.message),
        JSON.stringify(bad),
      );
    }
    const badAddress = cluster('/ws/pki', [host('a', '10.0.0.1 ;reboot')]);
    assert.throws(
      () => timerEnv(badAddress, badAddress.hosts[0]!, DEFAULT_DEFRAG_RULE),
      /client URL/,
    );
    assert.throws(() => timerUnits(c, '*-*-* 03:00\nExecStart=/bin/sh'), /the calendar/);
    assert.throws(() => timerUnits(c, "daily'; reboot"), /the calendar/);
    assert.match(timerUnits(c, 'hourly').timer, /^OnCalendar=hourly$/m);
  });

  it('the host plan renders to a script sh reads; the timer script is valid sh', () => {
    const c = threeHosts();
    for (const plan of [timerPlan(c, c.hosts[0]!), timerPlan(c, c.hosts[0]!, { remove: true })]) {
      const script = renderScript(plan);
      execFileSync('sh', ['-n'], { input: script });
    }
    execFileSync('sh', ['-n'], { input: TIMER_SCRIPT });
    const plan = timerPlan(c, c.hosts[0]!, { onCalendar: 'hourly' });
    assert.deepEqual(
      plan.steps.map((s) => s.id),
      [
        'systemd',
        'etcd_here',
        'flock_here',
        'calendar',
        'maintain_script',
        'maintain_env',
        'maintain_service',
        'maintain_timer',
        'maintain_reload',
        'maintain_timer_on',
      ],
    );
  });

  it('the last-run record from etcd is read field by field; anything else is dropped', () => {
    const good = {
      v: 1,
      cluster: 'edge',
      host: 'edge-2',
      startedAt: '2026-12-06T03:17:00Z',
      finishedAt: '2026-12-06T03:17:09Z',
      result: 'done',
      summary: 'defragmented edge-1, edge-3, edge-2',
      defragmented: ['edge-1', 'edge-3', 'edge-2'],
    };
    const run = parseMaintenanceRecord(Buffer.from(JSON.stringify(good)));
    assert.deepEqual(run, {
      host: 'edge-2',
      startedAt: good.startedAt,
      finishedAt: good.finishedAt,
      result: 'done',
      summary: good.summary,
      defragmented: good.defragmented,
    });
    assert.equal(
      maintenanceRunLine(run!, (s) => s),
      'scheduled maintenance 2026-12-06T03:17:09Z on edge-2: done: defragmented edge-1, edge-3, edge-2',
    );
    for (const bad of [
      'not json',
      JSON.stringify({ ...good, v: 2 }),
      JSON.stringify({ ...good, result: 'pwned' }),
      JSON.stringify({ ...good, host: 'a b' }),
      JSON.stringify({ ...good, finishedAt: 'yesterday' }),
      'x'.repeat(20_000),
    ])
      assert.equal(parseMaintenanceRecord(bad), undefined, bad.slice(0, 60));
    const odd = parseMaintenanceRecord(
      JSON.stringify({
        ...good,
        summary: `a\nb\u0007${'z'.repeat(400)}`,
        defragmented: ['ok', 'no way', 3],
      }),
    );
    assert.equal(odd?.summary.includes('\n'), false);
    assert.equal(odd?.summary.length, 300);
    assert.deepEqual(odd?.defragmented, ['ok']);
  });
});
