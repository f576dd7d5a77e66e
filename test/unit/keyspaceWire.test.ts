/** The protobuf wire reader and the envelope decoder, on built and on hostile bytes. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  classify,
  decodeJson,
  decodeProtobuf,
  encryptionOf,
  placeOfKey,
} from '../../src/core/keyspace/envelope';
import { fields, readVarint, WireError } from '../../src/core/etcd/wire';
import { encrypted, k8sObject, lenField, secret, varintField } from '../fixtures/k8sProto';

const pod = () =>
  k8sObject({
    apiVersion: 'v1',
    kind: 'Pod',
    name: 'web-1',
    namespace: 'default',
    uid: 'u-1',
    created: 1_700_000_000,
    labels: { app: 'web' },
    annotations: { big: 'x'.repeat(5000) },
    managedFields: [300, 200],
    body: [
      [2, 'spec-bytes'],
      [3, 'status'],
    ],
  });

describe('protobuf wire reader', () => {
  it('reads varints, including 10-byte negative int64', () => {
    assert.deepEqual(readVarint(Buffer.from([0xac, 0x02]), 0), [300, 2]);
    const neg = varintField(1, -1n).subarray(1);
    assert.equal(neg.length, 10);
    assert.equal(readVarint(neg, 0)[0], -1);
  });

  it('refuses a varint past the buffer or longer than 10 bytes', () => {
    assert.throws(() => readVarint(Buffer.from([0x80, 0x80]), 0), WireError);
    assert.throws(() => readVarint(Buffer.alloc(11, 0xff), 0), /longer than 10 bytes/);
  });

  it('never trusts a length beyond the buffer', () => {
    const lying = Buffer.concat([
      Buffer.from([0x0a]),
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]),
      Buffer.from('abc'),
    ]);
    assert.throws(() => [...fields(lying)], /claims 4294967295 bytes, 3 remain/);
  });

  it('refuses groups and field number 0', () => {
    assert.throws(() => [...fields(Buffer.from([0x0b]))], /wire type 3/);
    assert.throws(() => [...fields(Buffer.from([0x02, 0x00]))], /field number 0/);
  });

  it('walks a message field by field', () => {
    const m = Buffer.concat([lenField(1, 'a'), varintField(2, 7), lenField(3, 'xyz')]);
    assert.deepEqual(
      [...fields(m)].map((f) => [f.no, f.wire, f.num, f.size]),
      [
        [1, 2, 0, 1],
        [2, 0, 7, 1],
        [3, 2, 0, 3],
      ],
    );
  });
});

describe('Kubernetes envelope', () => {
  it('decodes apiVersion, kind, namespace, name and creation time', () => {
    const h = decodeProtobuf(pod());
    assert.equal(h.apiVersion, 'v1');
    assert.equal(h.kind, 'Pod');
    assert.equal(h.namespace, 'default');
    assert.equal(h.name, 'web-1');
    assert.equal(h.uid, 'u-1');
    assert.equal(h.creationTimestamp, '2023-11-14T22:13:20.500Z');
    assert.equal(h.problem, undefined);
    assert.equal(h.labels, undefined, 'labels only in the full view');
  });

  it('the full view adds labels, annotation sizes, managedFields and field sizes', () => {
    const h = decodeProtobuf(pod(), true);
    assert.deepEqual(h.labels, [['app', 'web']]);
    assert.deepEqual(h.annotations, [['big', 5000]]);
    assert.deepEqual(h.managedFields, { entries: 2, bytes: 500 });
    assert.deepEqual(
      h.objectFields?.map((f) => f.no),
      [1, 2, 3],
    );
  });

  it('a truncated value keeps what came before and names the problem', () => {
    const full = pod();
    for (const cut of [4, 6, 12, 20, 40, full.length - 1]) {
      const h = decodeProtobuf(full.subarray(0, cut));
      assert.match(h.problem ?? '', /malformed protobuf/, `cut at ${cut}`);
    }
    const h = decodeProtobuf(full.subarray(0, 20));
    assert.equal(h.apiVersion, 'v1');
    assert.equal(h.kind, 'Pod');
  });

  it('random and hostile bytes never throw', () => {
    for (let i = 0; i < 2000; i++) {
      const junk = Buffer.concat([Buffer.from('k8s\0'), randomBytes(i % 200)]);
      decodeProtobuf(junk, true);
      const flipped = Buffer.from(pod());
      const at = 4 + (i % (flipped.length - 4));
      flipped[at] = flipped[at]! ^ 0xff;
      decodeProtobuf(flipped, true);
    }
  });

  it('classifies by the first bytes', () => {
    assert.equal(classify(pod()), 'protobuf');
    assert.equal(classify(encrypted('aescbc', 'key1', randomBytes(40))), 'encrypted');
    assert.equal(classify(Buffer.from(' {"a":1}')), 'json');
    assert.equal(classify(Buffer.from('true')), 'text');
    assert.equal(classify(Buffer.from([1, 2, 3])), 'binary');
    assert.equal(classify(Buffer.alloc(0)), 'empty');
  });

  it('names the encryption provider and key, printable tokens only', () => {
    assert.deepEqual(encryptionOf(encrypted('aescbc', 'key1', randomBytes(32))), {
      provider: 'aescbc',
      version: 'v1',
      key: 'key1',
    });
    assert.deepEqual(encryptionOf(Buffer.from('k8s:enc:\x1b[31m:v1:k')), { provider: 'unknown' });
  });

  it('a Secret decodes to its metadata (its data is in field 2, only sized)', () => {
    const h = decodeProtobuf(secret('db', 'prod', { password: 'hunter2' }), true);
    assert.equal(h.kind, 'Secret');
    assert.equal(h.name, 'db');
    assert.ok(!JSON.stringify(h).includes('hunter2'));
  });

  it('JSON values (custom resources) give the same header', () => {
    const { header } = decodeJson(
      Buffer.from(
        JSON.stringify({
          apiVersion: 'example.com/v1',
          kind: 'Widget',
          metadata: { name: 'w', namespace: 'ns', creationTimestamp: '2024-01-01T00:00:00Z' },
        }),
      ),
    );
    assert.deepEqual(header, {
      apiVersion: 'example.com/v1',
      kind: 'Widget',
      name: 'w',
      namespace: 'ns',
      creationTimestamp: '2024-01-01T00:00:00Z',
    });
    assert.match(decodeJson(Buffer.from('{nope')).header.problem ?? '', /not valid JSON/);
  });
});

describe('registry keys', () => {
  it('core, group, custom and service paths', () => {
    assert.deepEqual(placeOfKey('/registry/pods/default/web-1'), {
      resource: 'pods',
      namespace: 'default',
      name: 'web-1',
    });
    assert.deepEqual(placeOfKey('/registry/namespaces/default'), {
      resource: 'namespaces',
      name: 'default',
    });
    assert.deepEqual(
      placeOfKey('/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com'),
      { resource: 'customresourcedefinitions.apiextensions.k8s.io', name: 'widgets.example.com' },
    );
    assert.deepEqual(placeOfKey('/registry/example.com/widgets/ns-1/w-1'), {
      resource: 'widgets.example.com',
      namespace: 'ns-1',
      name: 'w-1',
    });
    assert.deepEqual(placeOfKey('/registry/services/specs/default/kubernetes'), {
      resource: 'services/specs',
      namespace: 'default',
      name: 'kubernetes',
    });
    assert.deepEqual(placeOfKey('/registry/health'), { resource: 'health', name: '' });
    assert.equal(placeOfKey('/bootstrap/abc123').resource, '/bootstrap');
    assert.equal(placeOfKey('compact_rev_key').resource, 'compact_rev_key');
  });
});
