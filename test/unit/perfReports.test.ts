import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { PerfResult } from '../../src/shared/perfTypes';
import { compareReports, listReports, readReport, saveReport } from '../../src/core/perf/reports';

function result(over: Partial<PerfResult>): PerfResult {
  return {
    load: 's',
    durationMs: 60_000,
    elapsedMs: 60_100,
    target: 150,
    clients: 50,
    rps: 150,
    writes: 9000,
    errors: 0,
    errorDist: {},
    avgMs: 4,
    stddevMs: 2,
    slowestMs: 90,
    fastestMs: 1,
    p50Ms: 3,
    p99Ms: 40,
    pass: true,
    lines: [
      'PASS: Throughput is 150 writes/s',
      'PASS: Slowest request took 0.090000s',
      'PASS: Stddev is 0.002000s',
      'PASS',
    ],
    seconds: [],
    startedAt: '2026-11-24T10:00:00.000Z',
    endpoints: ['https://127.0.1.21:2379'],
    prefix: '/etcdctl-check-perf/',
    connections: 2,
    skippedEndpoints: [],
    cleanedUp: true,
    deletedKeys: 9000,
    cancelled: false,
    ...over,
  };
}

describe('performance reports', () => {
  it('saves, lists newest first per cluster with verdicts, and reads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-reports-'));
    try {
      const a = await saveReport(dir, 'edge-a', result({}));
      await saveReport(
        dir,
        'edge-a',
        result({
          startedAt: '2026-11-24T11:00:00.000Z',
          load: 'l',
          target: 8000,
          rps: 3400,
          pass: false,
        }),
      );
      await saveReport(
        dir,
        'edge-a',
        result({ startedAt: '2026-11-24T12:00:00.000Z', cancelled: true, pass: false }),
      );
      await saveReport(dir, 'edge-b', result({ startedAt: '2026-11-24T13:00:00.000Z' }));
      await writeFile(join(dir, 'notes.json'), '{"hello": 1}');
      const list = await listReports(dir, 'edge-a');
      assert.deepEqual(
        list.map((r) => [r.startedAt.slice(11, 13), r.load, r.verdict]),
        [
          ['12', 's', 'CANCELLED'],
          ['11', 'l', 'FAIL'],
          ['10', 's', 'PASS'],
        ],
      );
      assert.equal(
        (await listReports(dir)).length,
        4,
        'other clusters appear without a filter; foreign JSON is skipped',
      );
      assert.equal((await readReport(dir, a)).result.rps, 150);
      assert.deepEqual(await listReports(join(dir, 'missing')), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('compares two runs side by side with the throughput ratio', () => {
    const md = compareReports(
      {
        version: 1,
        cluster: 'edge-a',
        result: result({ rps: 3400, load: 'l', target: 8000, pass: false }),
      },
      {
        version: 1,
        cluster: 'edge-a',
        result: result({ rps: 3200, load: 'l', target: 8000, pass: false }),
      },
    );
    assert.match(
      md,
      /\| throughput \| 3400 writes\/s \(43% of target\) \| 3200 writes\/s \(40% of target\) \|/,
    );
    assert.match(md, /Throughput ratio A\/B: 1\.06/);
    assert.match(md, /\| verdict \| FAIL \| FAIL \|/);
  });
});
