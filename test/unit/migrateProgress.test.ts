import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { progressLine } from '../../src/cli/progressLine';
import { progressText, type MigrationProgress } from '../../src/core/migrate/progress';

const base: MigrationProgress = {
  phase: 'read',
  done: 0,
  total: 0,
  rows: 0,
  written: 0,
  alreadyThere: 0,
  bytesDone: 0,
  bytesTotal: 0,
};

describe('migration progress', () => {
  it('says what is done in each phase: rows, keys, bytes, time left', () => {
    assert.equal(
      progressText({
        ...base,
        done: 131072,
        total: 262144,
        rows: 1234567,
        bytesDone: 512 * 1024 ** 2,
        bytesTotal: 1024 ** 3,
        etaSec: 40,
      }),
      'Reading state.db: 1,234,567 rows, 512.0 MB of 1.00 GB (50%), about 40 s left',
    );
    assert.equal(
      progressText({
        ...base,
        phase: 'write',
        done: 1500,
        total: 3000,
        written: 1000,
        alreadyThere: 500,
        bytesDone: 3 * 1024 ** 2,
        bytesTotal: 6 * 1024 ** 2,
        etaSec: 300,
      }),
      'Writing: 1,500/3,000 keys (1,000 written, 500 already there), 3.0 MB of 6.0 MB (50%), about 5 min left',
    );
    assert.equal(
      progressText({ ...base, phase: 'verify', done: 10, total: 20 }),
      'Verifying: 10/20 keys read back',
    );
  });

  it('the way back: etcd read in pages, then state.db written', () => {
    assert.equal(
      progressText({ ...base, phase: 'etcd', done: 2902, bytesDone: 10.5 * 1024 ** 2 }),
      'Reading etcd: 2,902 keys, 10.5 MB',
    );
    assert.equal(
      progressText({
        ...base,
        phase: 'fill',
        done: 1000,
        total: 4000,
        bytesDone: 1024 ** 2,
        bytesTotal: 4 * 1024 ** 2,
        etaSec: 12,
      }),
      'Writing state.db: 1,000/4,000 keys, 1.0 MB of 4.0 MB (25%), about 12 s left',
    );
  });

  it('the CLI line is rewritten in place on a terminal, and silent in --json and in pipes', () => {
    const sink = (isTTY: boolean) => {
      const out: string[] = [];
      return { out, stream: { isTTY, columns: 40, write: (s: string) => out.push(s) > 0 } };
    };
    const tty = sink(true);
    const line = progressLine(false, tty.stream);
    line.update('Writing: 1/2 keys');
    line.update('too soon: dropped');
    line.done();
    assert.deepEqual(tty.out, ['\r\x1b[2KWriting: 1/2 keys', '\r\x1b[2K']);
    const long = sink(true);
    progressLine(false, long.stream).update('x'.repeat(100));
    assert.equal(long.out[0], `\r\x1b[2K${'x'.repeat(38)}…`);
    for (const [json, isTTY] of [
      [true, true],
      [false, false],
    ] as const) {
      const s = sink(isTTY);
      const l = progressLine(json, s.stream);
      l.update('anything');
      l.done();
      assert.deepEqual(s.out, []);
    }
  });
});
