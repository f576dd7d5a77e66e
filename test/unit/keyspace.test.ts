/** The keyspace tally (aggregates, top-N, leases, Secrets at rest), its text and its JSON. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyspaceTabReport, keyspaceText, secretsLine } from '../../src/core/keyspace/render';
import { summaryOf, type KeyspaceReport } from '../../src/core/keyspace/scan';
import { CAPS, KeyspaceTally, type KvLike } from '../../src/core/keyspace/tally';
import { printable, renderKeyView, viewOf } from '../../src/core/keyspace/view';
import { encrypted, k8sObject, secret } from '../fixtures/k8sProto';

const kv = (key: string, value: Buffer | string, lease = '0'): KvLike => ({
  key: Buffer.from(key),
  value: Buffer.isBuffer(value) ? value : Buffer.from(value),
  lease,
  mod_revision: '7',
  version: '1',
});

const pod = (name: string, ns: string, pad: number) =>
  k8sObject({
    apiVersion: 'v1',
    kind: 'Pod',
    name,
    namespace: ns,
    created: 1_700_000_000,
    body: [[2, 'p'.repeat(pad)]],
  });

function report(t: KeyspaceTally): KeyspaceReport {
  return {
    prefix: '',
    revision: '42',
    compaction: { compactRevision: 30, revisionsSince: 12 },
    keys: t.keys,
    bytes: t.bytes,
    valueBytes: t.valueBytes,
    resources: t.resourceRows(),
    namespaces: t.namespaceRows(),
    top: t.topKeys(),
    leases: { total: 3, keysWithLease: 2, list: t.leaseRows() },
    secrets: t.secrets,
    pages: 1,
    elapsedMs: 5,
  };
}

describe('keyspace tally', () => {
  it('keys and bytes by resource and namespace, largest first', () => {
    const t = new KeyspaceTally(3);
    const all = [
      kv('/registry/pods/a/p1', pod('p1', 'a', 100)),
      kv('/registry/pods/b/p2', pod('p2', 'b', 900)),
      kv('/registry/configmaps/a/c1', 'x'.repeat(50)),
      kv('/registry/namespaces/a', 'ns'),
      kv('/registry/events/a/e1', '{"e":1}', '7587'),
      kv('/registry/events/a/e2', '{"e":2}', '7587'),
    ];
    for (const x of all) t.add(x);
    const size = (x: KvLike) => x.key.length + x.value.length;
    assert.equal(t.keys, 6);
    assert.equal(
      t.bytes,
      all.reduce((a, x) => a + size(x), 0),
    );
    const rows = t.resourceRows();
    assert.deepEqual(
      rows.map((r) => [r.resource, r.keys]),
      [
        ['pods', 2],
        ['configmaps', 1],
        ['events', 2],
        ['namespaces', 1],
      ],
    );
    assert.equal(rows[0]!.bytes, size(all[0]!) + size(all[1]!));
    assert.equal(rows[0]!.kind, 'Pod');
    assert.deepEqual(rows[0]!.encodings, { protobuf: 2 });
    assert.deepEqual(
      t.namespaceRows().map((n) => [n.namespace, n.keys]),
      [
        ['b', 1],
        ['a', 4],
      ],
    );
    // Leases in hex, as etcdctl prints them.
    assert.deepEqual(
      t.leaseRows().map((l) => [l.id, l.keys, l.resources]),
      [['1da3', 2, ['events']]],
    );
  });

  it('keeps the N largest keys, decoded, and no value', () => {
    const t = new KeyspaceTally(2);
    for (let i = 0; i < 50; i++)
      t.add(kv(`/registry/pods/ns/p${i}`, pod(`p${i}`, 'ns', (i * 37) % 50)));
    t.add(kv('/registry/secrets/ns/s', secret('s', 'ns', { token: 'hunter2'.repeat(100) })));
    const top = t.topKeys();
    assert.equal(top.length, 2);
    assert.equal(top[0]!.key, '/registry/secrets/ns/s');
    assert.equal(top[0]!.object.kind, 'Secret');
    assert.ok(top[0]!.bytes >= top[1]!.bytes);
    assert.equal(top[1]!.object.name, 'p27', 'the largest pod (27 * 37 % 50 = pad 49)');
    assert.ok(!JSON.stringify(top).includes('hunter2'), 'no value in the result');
  });

  it('counts Secrets encrypted at rest and in plain text', () => {
    const t = new KeyspaceTally(0);
    t.add(kv('/registry/secrets/a/enc', encrypted('aescbc', 'key1', randomBytes(30))));
    t.add(kv('/registry/secrets/a/enc2', encrypted('secretbox', 'k2', randomBytes(30))));
    t.add(kv('/registry/secrets/a/plain', secret('plain', 'a', { x: 'y' })));
    assert.deepEqual(t.secrets, {
      total: 3,
      encrypted: 2,
      plain: 1,
      providers: ['aescbc:key1', 'secretbox:k2'],
    });
    assert.match(
      secretsLine(t.secrets),
      /3, 2 encrypted at rest \(aescbc:key1, secretbox:k2\), 1 in plain text/,
    );
    assert.match(
      secretsLine({ total: 2, encrypted: 0, plain: 2, providers: [] }),
      /plain text.*--secrets-encryption/,
    );
    assert.match(
      secretsLine({ total: 2, encrypted: 2, plain: 0, providers: ['kms'] }),
      /all encrypted at rest \(kms\)/,
    );
  });

  it('a hostile keyspace of very many names folds into "(other)"', () => {
    const t = new KeyspaceTally(0);
    const n = CAPS.resources + 10;
    for (let i = 0; i < n; i++) t.add(kv(`/registry/r${i}/x`, 'v'));
    assert.equal(t.resourceRows().length, CAPS.resources + 1);
    assert.equal(t.resourceRows().find((r) => r.resource === '(other)')?.keys, 10);
    assert.equal(t.folded, true);
  });
});

describe('keyspace output', () => {
  it('text: resources, namespaces, largest keys, leases, compaction, Secrets; control characters escaped', () => {
    const t = new KeyspaceTally(5);
    t.add(kv('/registry/pods/default/web', pod('web', 'default', 3000)));
    t.add(kv('/registry/configmaps/kube-system/evil\x1b[2J', 'x'));
    t.add(kv('/registry/events/default/e', '{"a":1}', '255'));
    t.add(kv('/registry/secrets/default/s', encrypted('aescbc', 'key1', randomBytes(10))));
    const text = keyspaceText(report(t));
    assert.match(text, /^4 keys, .* at revision 42/);
    assert.match(text, /Compaction: revisions before 30 are compacted; 12 revisions since\./);
    assert.match(text, /RESOURCE\s+KIND\s+KEYS\s+BYTES\s+SHARE\s+LARGEST\n\s*pods\s+Pod\s+1\s/);
    assert.match(
      text,
      /\/registry\/pods\/default\/web\s+Pod v1, default\/web, created 2023-11-14T22:13:20.500Z/,
    );
    assert.match(
      text,
      /Leases: 3 in etcd; 2 scanned keys are attached to 1 of them\.\n\s*LEASE.*\n\s*ff\s+1\s/,
    );
    assert.match(text, /Secrets: 1, all encrypted at rest \(aescbc:key1\)\./);
    assert.ok(!text.includes('\x1b'), 'no escape sequence reaches the terminal');
    assert.match(text, /evil\\x1b\[2J/);
  });

  it('the Keyspace tab gets display-ready, printable strings and the raw key to send back', () => {
    const t = new KeyspaceTally(3);
    const evil = '/registry/configmaps/ns/\u202egnp.exe\x1b]0;x\x07';
    t.add(kv(evil, 'x'.repeat(100)));
    t.add(kv('/registry/secrets/a/s', secret('s', 'a', { p: 'hunter2' })));
    const v = keyspaceTabReport(report(t));
    assert.equal(v.top[0]!.rawKey, evil);
    assert.equal(v.top[0]!.key, '/registry/configmaps/ns/\\u202egnp.exe\\x1b]0;x\\x07');
    assert.equal(v.secretsPlain, true);
    assert.match(v.secrets, /plain text/);
    assert.ok(!JSON.stringify(v).includes('hunter2'));
    assert.ok(
      !/[\u0000-\u001f\u202e]/.test(
        JSON.stringify({ ...v, top: v.top.map((x) => ({ ...x, rawKey: '' })) }),
      ),
    );
  });

  it('JSON is the report itself, and the summary for the NOSPACE rescue is bytes by resource', () => {
    const t = new KeyspaceTally(2);
    t.add(kv('/registry/pods/default/web', pod('web', 'default', 3000)));
    t.add(kv('/registry/events/default/e', '{"a":1}'));
    const r = report(t);
    const back = JSON.parse(JSON.stringify(r)) as KeyspaceReport;
    assert.deepEqual(Object.keys(back).sort(), [
      'bytes',
      'compaction',
      'elapsedMs',
      'keys',
      'leases',
      'namespaces',
      'pages',
      'prefix',
      'resources',
      'revision',
      'secrets',
      'top',
      'valueBytes',
    ]);
    assert.deepEqual(back.top[0]!.object.kind, 'Pod');
    const s = summaryOf(r, 1);
    assert.deepEqual(s.resources, [{ resource: 'pods', keys: 1, bytes: r.resources[0]!.bytes }]);
    assert.deepEqual(s.largest, [
      { key: '/registry/pods/default/web', resource: 'pods', bytes: r.top[0]!.bytes },
    ]);
  });

  it('the value view: JSON as JSON, a Secret metadata only, /bootstrap not shown', () => {
    const cr = renderKeyView(
      viewOf(
        '/registry/example.com/widgets/a/w',
        kv('', '{"kind":"Widget","metadata":{"name":"w"},"spec":{"n":1}}'),
      ),
    );
    assert.match(cr, /kind:\s+Widget/);
    assert.match(cr, /"n": 1/);
    const s = renderKeyView(
      viewOf('/registry/secrets/a/s', kv('', secret('s', 'a', { password: 'hunter2' }))),
    );
    assert.match(
      s,
      /kind:\s+Secret[\s\S]*fields:\s+1 \(metadata\) .*, 2 \(data\)[\s\S]*never shown/,
    );
    assert.doesNotMatch(s, /hunter2/);
    const js = renderKeyView(
      viewOf('/registry/secrets/a/j', kv('', '{"kind":"Secret","data":{"p":"aHVudGVyMg=="}}')),
    );
    assert.doesNotMatch(js, /aHVudGVyMg/);
    assert.match(
      renderKeyView(viewOf('/bootstrap/abc', kv('', 'certs'))),
      /Outside \/registry\/.*not shown/,
    );
    assert.doesNotMatch(renderKeyView(viewOf('/bootstrap/abc', kv('', 'certs'))), /certs/);
    assert.match(renderKeyView(viewOf('/registry/pods/a/x', undefined)), /No such key/);
    assert.equal(printable('a\u202eb\nc'), 'a\\u202eb\\x0ac');
  });
});
