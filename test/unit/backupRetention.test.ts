/**
 * Generational retention: the hosts' `sh` (the backup script's `--prune`) deletes exactly what
 * retention.ts says, over backups spread across hours, days, ISO weeks and a year's turn, for
 * several keep settings; the newest is always kept; and both keep, for the default policy over
 * a list of stamps, exactly the set worked out by hand.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BACKUP_SCRIPT } from '../../src/core/backup/hostScript';
import { isoWeek, toPrune, type Keep } from '../../src/core/backup/retention';
import { DEFAULT_BACKUP_KEEP } from '../../src/core/inventory/backup';

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

  it('the default policy (24 hourly, 7 daily, 4 weekly) keeps exactly these, by hand', () => {
    assert.deepEqual({ ...DEFAULT_BACKUP_KEEP }, { hourly: 24, daily: 7, weekly: 4 });
    // 2026-03-18 is a Wednesday of ISO week 12; 03-16 is its Monday, 03-15 the Sunday of week 11,
    // 03-08 the Sunday of week 10, 03-01 the Sunday of week 9, 02-22 the Sunday of week 8.
    const stamps = [
      // The 24 newest hours that have a backup: 03-18 12h (two in it), 11h ... 00h, and
      // 03-17 23h ... 13h; 03-17 12h is the 25th.
      '20260318T123000Z',
      '20260318T120000Z',
      '20260318T110000Z',
      '20260318T100000Z',
      '20260318T090000Z',
      '20260318T080000Z',
      '20260318T070000Z',
      '20260318T060000Z',
      '20260318T050000Z',
      '20260318T040000Z',
      '20260318T030000Z',
      '20260318T020000Z',
      '20260318T010000Z',
      '20260318T000000Z',
      '20260317T230000Z',
      '20260317T220000Z',
      '20260317T210000Z',
      '20260317T200000Z',
      '20260317T190000Z',
      '20260317T180000Z',
      '20260317T170000Z',
      '20260317T160000Z',
      '20260317T150000Z',
      '20260317T140000Z',
      '20260317T130000Z',
      '20260317T120000Z',
      // Days 3 to 8 that have a backup: 03-16 (two), 03-15, 03-14, 03-12, 03-11, then 03-10.
      '20260316T030000Z',
      '20260316T010000Z',
      '20260315T020000Z',
      '20260314T020000Z',
      '20260312T020000Z',
      '20260311T020000Z',
      '20260310T020000Z',
      // Weeks 10 (two), 9, 8 and week 1.
      '20260308T020000Z',
      '20260302T020000Z',
      '20260301T020000Z',
      '20260222T020000Z',
      '20260101T020000Z',
    ];
    const kept = [
      '20260318T123000Z', // the newest; hour 1, day 1, week 1 (W12)
      '20260318T110000Z',
      '20260318T100000Z',
      '20260318T090000Z',
      '20260318T080000Z',
      '20260318T070000Z',
      '20260318T060000Z',
      '20260318T050000Z',
      '20260318T040000Z',
      '20260318T030000Z',
      '20260318T020000Z',
      '20260318T010000Z',
      '20260318T000000Z',
      '20260317T230000Z', // hour 14, and day 2
      '20260317T220000Z',
      '20260317T210000Z',
      '20260317T200000Z',
      '20260317T190000Z',
      '20260317T180000Z',
      '20260317T170000Z',
      '20260317T160000Z',
      '20260317T150000Z',
      '20260317T140000Z',
      '20260317T130000Z', // hour 24
      '20260316T030000Z', // day 3
      '20260315T020000Z', // day 4, week 2 (W11)
      '20260314T020000Z', // day 5
      '20260312T020000Z', // day 6
      '20260311T020000Z', // day 7
      '20260308T020000Z', // week 3 (W10)
      '20260301T020000Z', // week 4 (W09)
    ];
    const pruned = [
      '20260318T120000Z', // an older one in hour 1
      '20260317T120000Z', // the 25th hour, not the newest of its day
      '20260316T010000Z', // an older one of day 3
      '20260310T020000Z', // the 8th day, and W11 has a newer one
      '20260302T020000Z', // W10 has a newer one
      '20260222T020000Z', // the 5th week
      '20260101T020000Z', // the 6th week
    ];
    assert.deepEqual([...kept, ...pruned].sort(), [...stamps].sort(), 'every stamp placed once');
    const file = (t: string) => `lab-${t}.db.gz.enc`;
    const names = stamps.map(file);
    assert.deepEqual(toPrune(names, DEFAULT_BACKUP_KEEP).sort(), pruned.map(file).sort());
    const dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-prune-'));
    try {
      const script = join(dir, 'k3s-etcd-backup');
      writeFileSync(script, BACKUP_SCRIPT);
      const sh = execFileSync('sh', [script, '--prune', '24', '7', '4'], {
        input: names.join('\n') + '\n',
        encoding: 'utf8',
      });
      assert.deepEqual(sh.split('\n').filter(Boolean).sort(), pruned.map(file).sort());
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
