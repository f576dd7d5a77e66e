/**
 * The performance check's range and delete messages (etcd/rpcMessages.ts), encoded by field
 * number: read back with protobufjs from etcd3's own copy of etcd's rpc.proto (what etcd's
 * server reads), and the DeleteRange answer decoded from bytes protobufjs wrote as etcd would.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as protobuf from 'protobufjs';
import {
  decodeDeleteRange,
  decodeRange,
  encodeDeleteRangeRequest,
  encodeRangeOverRequest,
} from '../../src/core/etcd/rpcMessages';
import { prefixRangeEnd } from '../../src/core/perf/connections';

const root = new protobuf.Root().loadSync(
  join(__dirname, '../../node_modules/etcd3/proto/rpc.proto'),
  { keepCase: true },
);
const type = (name: string) => root.lookupType(`etcdserverpb.${name}`);
const plain = (name: string, buf: Uint8Array) =>
  type(name).toObject(type(name).decode(buf), { longs: String, enums: String, defaults: true });

const prefix = Buffer.from('/etcdctl-check-perf/');
const end = prefixRangeEnd(prefix);

describe('perf rpc messages', () => {
  it('the prefix look-up is a keys-only range of one key over [prefix, prefix+1)', () => {
    const r = plain(
      'RangeRequest',
      encodeRangeOverRequest(prefix, end, { limit: 1, keysOnly: true }),
    );
    assert.equal(Buffer.from(r['key'] as Uint8Array).toString(), '/etcdctl-check-perf/');
    assert.equal(Buffer.from(r['range_end'] as Uint8Array).toString(), '/etcdctl-check-perf0');
    assert.equal(r['limit'], '1');
    assert.equal(r['keys_only'], true);
    assert.equal(r['count_only'], false);
    assert.equal(r['serializable'], false); // linearizable, as etcd3 and etcdctl ask
  });

  it('the count after the clean-up is count-only, with no limit', () => {
    const r = plain('RangeRequest', encodeRangeOverRequest(prefix, end, { countOnly: true }));
    assert.equal(r['count_only'], true);
    assert.equal(r['keys_only'], false);
    assert.equal(r['limit'], '0');
  });

  it('a long limit and a key with every byte value survive the encoding', () => {
    const key = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));
    const r = plain(
      'RangeRequest',
      encodeRangeOverRequest(key, Buffer.from([0]), { limit: 70000 }),
    );
    assert.deepEqual(Buffer.from(r['key'] as Uint8Array), key);
    assert.deepEqual(Buffer.from(r['range_end'] as Uint8Array), Buffer.from([0]));
    assert.equal(r['limit'], '70000');
  });

  it('the delete is DeleteRange over [prefix, prefix+1) without prev_kv', () => {
    const r = plain('DeleteRangeRequest', encodeDeleteRangeRequest(prefix, end));
    assert.equal(Buffer.from(r['key'] as Uint8Array).toString(), '/etcdctl-check-perf/');
    assert.equal(Buffer.from(r['range_end'] as Uint8Array).toString(), '/etcdctl-check-perf0');
    assert.equal(r['prev_kv'], false);
  });

  it("etcd's DeleteRange answer gives the count and the revision exactly", () => {
    const t = type('DeleteRangeResponse');
    const buf = t
      .encode(
        t.fromObject({
          header: { cluster_id: '1', member_id: '2', revision: '9007199254740993', raft_term: '3' },
          deleted: '9000',
        }),
      )
      .finish();
    assert.deepEqual(decodeDeleteRange(buf), { deleted: '9000', revision: '9007199254740993' });
    assert.deepEqual(decodeDeleteRange(new Uint8Array(0)), { deleted: '0', revision: '0' });
  });

  it("etcd's count-only Range answer gives the count", () => {
    const t = type('RangeResponse');
    const buf = t.encode(t.fromObject({ header: { revision: '5' }, count: '123' })).finish();
    assert.deepEqual(decodeRange(buf), { kvs: [], count: '123' });
  });
});
