import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prefixEnd } from '../../src/core/etcd/paginate';
import { ETCD_DEFAULT_MAX_REQUEST_BYTES, putCost, TXN_OVERHEAD } from '../../src/core/migrate/kine';
import { batches, rangesFor } from '../../src/core/migrate/write';

const row = (name: string, kib: number) => ({ name, bytes: kib * 1024 });

describe('migration transactions and read ranges', () => {
  it('cuts batches by bytes under the request limit as well as by count', () => {
    const rows = [
      row('/registry/a', 1),
      row('/registry/b', 900),
      row('/registry/c', 700),
      row('/registry/d', 100),
      row('/registry/e', 850),
      ...Array.from({ length: 300 }, (_, i) => row(`/registry/s${i}`, 0)),
    ];
    const out = batches(rows, 128, ETCD_DEFAULT_MAX_REQUEST_BYTES);
    assert.deepEqual(
      out.slice(0, 3).map((b) => b.map((r) => r.name)),
      [
        ['/registry/a', '/registry/b'],
        ['/registry/c', '/registry/d'],
        ['/registry/e', ...out[2]!.slice(1).map((r) => r.name)],
      ],
    );
    for (const b of out) {
      assert.ok(b.length <= 128);
      const bytes = b.reduce((n, r) => n + putCost(r.name, r.bytes), 0);
      assert.ok(bytes + TXN_OVERHEAD <= ETCD_DEFAULT_MAX_REQUEST_BYTES, `${bytes}`);
    }
    assert.equal(out.flat().length, rows.length);
    assert.deepEqual(out.flat(), rows, 'revision order kept');
  });

  it('reads keys in sorted, disjoint ranges: one per first segment, odd names alone', () => {
    const r = rangesFor(['/registry/pods/a', '/bootstrap/x', '123', '/registry/b', '/registry']);
    assert.deepEqual(
      r.map((x) => [x.start.toString(), x.end.toString('latin1')]),
      [
        ['/bootstrap/', '/bootstrap0'],
        ['/registry', '/registry\0'],
        ['/registry/', '/registry0'],
        ['123', '123\0'],
      ],
    );
    assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
    assert.deepEqual(prefixEnd(Buffer.from([0xff])), Buffer.from([0]));
  });
});
