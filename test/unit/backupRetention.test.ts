/**
 * Generational retention: the hosts' `sh` (the backup script's `--prune`) deletes exactly what
 * retention.ts says, over backups spread across hours, days, ISO weeks and a year's turn, for
 * several keep settings; the newest is always kept.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BACKUP_SCRIPT } from '../../src/core/backup/hostScript';
import { isoWeek, toPrune, type Keep } from '../../src/core/backup/retention';

const name = (t: number) => {
  const s = new Date(t).toISOString();
  return `lab-${s.slice(0, 4)}${s.slice(5, 7)}${s.slice(8, 10)}T${s.slice(11, 13)}${s.slice(14, 16)}${s.slice(17, 19)}Z.db.gz.enc`;
};

describe('backup retention', () => {
  it('the hosts prune exactly what retention.ts prunes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-prune-'));
    try {
      const script = join(dir, 'k3s-etcd-backup');
      writeFileSync(script, BACKUP_SCRIPT);
      // Every 7 hours for 10 weeks across a year's turn, plus two in one hour.
      const start = Date.UTC(2026, 11, 1, 0, 30);
      const names = Array.from({ length: 240 }, (_v, i) => name(start + i * 7 * 3_600_000));
      names.push(name(start + 239 * 7 * 3_600_000 + 600_000));
      const keeps: Keep[] = [
        { hourly: 24, daily: 7, weekly: 4 },
        { hourly: 0, daily: 0, weekly: 0 },
        { hourly: 2, daily: 2, weekly: 1 },
        { hourly: 0, daily: 30, weekly: 0 },
        { hourly: 1000, daily: 0, weekly: 0 },
      ];
      for (const keep of keeps) {
        const sh = execFileSync(
          'sh',
          [script, '--prune', String(keep.hourly), String(keep.daily), String(keep.weekly)],
          { input: [...names].reverse().join('\n') + '\n', encoding: 'utf8' },
        )
          .split('\n')
          .filter(Boolean)
          .sort();
        const ts = toPrune(names, keep).sort();
        assert.deepEqual(sh, ts, JSON.stringify(keep));
        assert.ok(!ts.includes([...names].sort().at(-1)!), 'the newest is always kept');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ISO weeks as date +%G-W%V counts them, across year ends', () => {
    for (const [day, week] of [
      ['20261231', '2026-W53'],
      ['20270101', '2026-W53'],
      ['20270104', '2027-W01'],
      ['20251229', '2026-W01'],
      ['20261207', '2026-W50'],
    ])
      assert.equal(isoWeek(day!), week);
  });
});
