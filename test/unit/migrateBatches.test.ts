import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import protobuf from 'protobufjs';
import { prefixEnd } from '../../src/core/etcd/paginate';
import { ETCD_DEFAULT_MAX_REQUEST_BYTES, putCost, TXN_OVERHEAD } from '../../src/core/migrate/kine';
import { batches, rangesFor, writeRows } from '../../src/core/migrate/write';
import type { KineKey } from '../../src/core/migrate/kine';

/** etcd's own TxnRequest (etcd3's copy of rpc.proto), field names as etcd3 sends them. */
function txnEncoder(): (request: object) => number {
  const root = new protobuf.Root().loadSync(require.resolve('etcd3/proto/rpc.proto'), {
    keepCase: true,
  });
  const Txn = root.lookupType('etcdserverpb.TxnRequest');
  return (request) => Txn.encode(Txn.fromObject(request)).finish().length;
}

/**
 * Every transaction the migration really sends (etcd3's builders, as write.ts drives them),
 * encoded as etcd receives it: its size against the request limit. Nothing is sent.
 */
async function sentSizes(keys: KineKey[], maxRequestBytes: number): Promise<number[]> {
  const size = txnEncoder();
  const client = new Etcd3({ hosts: ['127.0.0.1:9'] });
  const sizes: number[] = [];
  try {
    (client as unknown as { kv: { txn(r: object): Promise<object> } }).kv.txn = async (r) => {
      sizes.push(size(r));
      return { succeeded: true, responses: [] };
    };
    (client as unknown as { lease(): { grant(): Promise<string> } }).lease = () => ({
      grant: async () => '7587869455000000001',
    });
    const r = await writeRows(client, keys, (k) => new Uint8Array(k.bytes).fill(0x6b), {
      maxRequestBytes,
    });
    assert.equal(r.written, keys.length, 'every key written once');
  } finally {
    client.close();
  }
  return sizes;
}

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

  it("keeps every transaction as etcd encodes it under the limit: long names, leases, values near a batch's share", async () => {
    // 128 keys of ~100 bytes with ~12 KiB values fill a batch to the byte: the names are sent
    // three times (compare, put, read-back), which a budget counting them twice overshot.
    const name = (i: number) =>
      `/registry/helm.sh/release.v1/${'n'.repeat(60)}-${String(i).padStart(5, '0')}`;
    const shapes: [string, KineKey[]][] = [
      [
        'long names',
        Array.from({ length: 600 }, (_, i) => ({
          id: i + 1,
          name: name(i),
          lease: 0,
          bytes: 11_990,
        })),
      ],
      [
        'leased',
        Array.from({ length: 600 }, (_, i) => ({
          id: i + 1,
          name: name(i),
          lease: 3600,
          bytes: 11_900,
        })),
      ],
      [
        'large values',
        [700, 900, 100, 850, 1400, 12, 300].map((kib, i) => ({
          id: i + 1,
          name: name(i),
          lease: 0,
          bytes: kib * 1024,
        })),
      ],
    ];
    for (const limit of [ETCD_DEFAULT_MAX_REQUEST_BYTES, 3 * 1024 * 1024]) {
      for (const [what, keys] of shapes) {
        const sizes = await sentSizes(keys, limit);
        assert.ok(sizes.length > 1, `${what}: more than one transaction`);
        const over = sizes.filter((n) => n > limit);
        assert.deepEqual(
          over,
          [],
          `${what} at ${limit}: ${over.length} of ${sizes.length} transactions over the limit (largest ${Math.max(...sizes)})`,
        );
      }
    }
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
