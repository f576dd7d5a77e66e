/**
 * What fills the keyspace, on a real 3-member mutual-TLS etcd filled like a K3s cluster migrated
 * from kine: Kubernetes protobuf envelopes built from the published wire format (pods,
 * ConfigMaps, Secrets in plain text and `k8s:enc:aescbc`, a CRD, a custom resource in JSON,
 * services), events attached to leases as kube-apiserver attaches them, K3s's /bootstrap, and
 * kube-apiserver's compact_rev_key after a real compaction. `k3s-etcd keyspace --json` must agree
 * with an independent scan by etcdctl (`get --prefix "" -w json`, base64 keys and values) on keys
 * and bytes per resource and per namespace, and show objects, leases, compaction and Secrets at
 * rest; `--show` decodes one key and never prints a Secret's data.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { createEndpointClient } from '../../src/core/etcd/client';
import type { KeyspaceReport } from '../../src/core/keyspace/scan';
import { keyspaceSummary, scanKeyspace } from '../../src/core/keyspace/scan';
import { etcdctl } from '../../scripts/harness/etcd';
import { captureIO } from '../fixtures/cli';
import { encrypted, k8sObject, secret } from '../fixtures/k8sProto';
import { admin, etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

/** The fixture: key → value, and which keys go on which lease (by index). */
function fixture(): { kvs: Map<string, Buffer>; leased: Array<string[]> } {
  const kvs = new Map<string, Buffer>();
  const obj = (kind: string, apiVersion: string, name: string, namespace?: string, pad = 0) =>
    k8sObject({
      apiVersion,
      kind,
      name,
      ...(namespace ? { namespace } : {}),
      uid: `uid-${name}`,
      created: 1_700_000_000,
      labels: { app: name },
      managedFields: [120],
      body: [[2, 'x'.repeat(pad)]],
    });
  kvs.set('/registry/health', Buffer.from('{"health":"true"}'));
  for (const ns of ['default', 'kube-system', 'apps']) {
    kvs.set(`/registry/namespaces/${ns}`, obj('Namespace', 'v1', ns));
    kvs.set(`/registry/serviceaccounts/${ns}/default`, obj('ServiceAccount', 'v1', 'default', ns));
  }
  for (let i = 0; i < 40; i++)
    kvs.set(`/registry/pods/apps/web-${i}`, obj('Pod', 'v1', `web-${i}`, 'apps', 200 + i * 10));
  for (let i = 0; i < 15; i++)
    kvs.set(
      `/registry/configmaps/kube-system/cm-${i}`,
      obj('ConfigMap', 'v1', `cm-${i}`, 'kube-system', 50),
    );
  kvs.set('/registry/configmaps/apps/huge', obj('ConfigMap', 'v1', 'huge', 'apps', 300_000));
  for (let i = 0; i < 6; i++)
    kvs.set(
      `/registry/secrets/apps/plain-${i}`,
      secret(`plain-${i}`, 'apps', { password: `hunter2-${i}` }),
    );
  for (let i = 0; i < 9; i++)
    kvs.set(
      `/registry/secrets/kube-system/enc-${i}`,
      encrypted('aescbc', 'key1', randomBytes(400)),
    );
  kvs.set(
    '/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com',
    obj(
      'CustomResourceDefinition',
      'apiextensions.k8s.io/v1',
      'widgets.example.com',
      undefined,
      2000,
    ),
  );
  for (let i = 0; i < 4; i++)
    kvs.set(
      `/registry/example.com/widgets/apps/w-${i}`,
      Buffer.from(
        JSON.stringify({
          apiVersion: 'example.com/v1',
          kind: 'Widget',
          metadata: { name: `w-${i}`, namespace: 'apps' },
          spec: { size: i },
        }),
      ),
    );
  kvs.set(
    '/registry/services/specs/default/kubernetes',
    obj('Service', 'v1', 'kubernetes', 'default'),
  );
  kvs.set(
    '/registry/services/endpoints/default/kubernetes',
    obj('Endpoints', 'v1', 'kubernetes', 'default'),
  );
  kvs.set('/bootstrap/0123abcd', Buffer.from(`{"ServerCA":"${'A'.repeat(500)}"}`));
  const leased: string[][] = [[], []];
  for (let i = 0; i < 30; i++) {
    const key = `/registry/events/apps/web-${i}.17a${i}`;
    kvs.set(key, obj('Event', 'v1', `web-${i}.17a${i}`, 'apps', 80));
    leased[i % 3 === 0 ? 1 : 0]!.push(key);
  }
  return { kvs, leased };
}

interface EtcdctlKv {
  key: string;
  value?: string;
}

describe('what fills the keyspace', () => {
  const { tempDir, track } = testScope('k3s-etcd-keyspace-');

  it('agrees with etcdctl on keys and bytes per resource and decodes the envelopes', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    const { etcd } = await etcdWithOurCerts(pki, 3, { track, extra: { samePorts: true } });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const tls = admin(pki);
    const { kvs, leased } = fixture();

    const client = await createEndpointClient(etcd.endpoints[0]!, { tls, timeoutMs: 15_000 });
    try {
      // History to compact: a hot key rewritten, then kube-apiserver's compaction record.
      for (let r = 0; r < 50; r++)
        await client.put('/registry/leases/kube-system/hot').value(
          k8sObject({
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            name: 'hot',
            namespace: 'kube-system',
            created: r,
          }),
        );
      const leaseIds: string[] = [];
      for (const keys of leased) {
        const lease = client.lease(3600, { autoKeepAlive: false });
        leaseIds.push(BigInt(await lease.grant()).toString(16));
        for (const k of keys) await lease.put(k).value(kvs.get(k)!);
      }
      for (const [k, v] of kvs) if (!leased.flat().includes(k)) await client.put(k).value(v);
      const before = await client.kv.range({
        key: Buffer.from('compact_rev_key'),
        count_only: true,
      });
      const compactAt = Number(before.header.revision) - 5;
      await client.put('compact_rev_key').value(String(compactAt));
      await client.kv.compact({ revision: String(compactAt), physical: true });

      // Our view, through the CLI with the inventory's cluster.
      const run = captureIO(dir);
      assert.equal(await main(['keyspace', '--json', '--top', '5'], run.io), 0, run.out.join('\n'));
      const report = JSON.parse(run.out.join('\n')) as KeyspaceReport;

      // etcdctl's view, computed here without our code.
      const r = await etcdctl(etcd, ['get', '--prefix', '', '-w', 'json'], { tls: { ...tls } });
      assert.equal(r.code, 0, r.stderr);
      const theirs = (JSON.parse(r.stdout) as { kvs: EtcdctlKv[] }).kvs.map((kv) => ({
        key: Buffer.from(kv.key, 'base64').toString('utf8'),
        bytes: Buffer.from(kv.key, 'base64').length + Buffer.from(kv.value ?? '', 'base64').length,
      }));
      const perResource = new Map<string, { keys: number; bytes: number }>();
      const perNamespace = new Map<string, { keys: number; bytes: number }>();
      const bump = (
        m: Map<string, { keys: number; bytes: number }>,
        name: string,
        bytes: number,
      ) => {
        const row = m.get(name) ?? { keys: 0, bytes: 0 };
        row.keys++;
        row.bytes += bytes;
        m.set(name, row);
      };
      for (const { key, bytes } of theirs) {
        const m = /^\/registry\/([^/]+)\/(.*)$/.exec(key);
        let resource = key.startsWith('/') ? `/${key.split('/')[1]}` : key;
        let rest: string[] = [];
        if (key === '/registry/health') resource = 'health';
        else if (m) {
          const segs = m[2]!.split('/');
          if (m[1]!.includes('.')) [resource, rest] = [`${segs[0]}.${m[1]}`, segs.slice(1)];
          else if (m[1] === 'services') [resource, rest] = [`services/${segs[0]}`, segs.slice(1)];
          else [resource, rest] = [m[1]!, segs];
        }
        bump(perResource, resource, bytes);
        if (rest.length === 2) bump(perNamespace, rest[0]!, bytes);
      }
      const ours = (rows: Array<{ keys: number; bytes: number }>, name: (x: never) => string) =>
        new Map(rows.map((x) => [name(x as never), { keys: x.keys, bytes: x.bytes }]));
      assert.equal(report.keys, theirs.length);
      assert.equal(
        report.bytes,
        theirs.reduce((a, b) => a + b.bytes, 0),
      );
      assert.deepEqual(
        ours(report.resources, (x: { resource: string }) => x.resource),
        perResource,
      );
      assert.deepEqual(
        ours(report.namespaces, (x: { namespace: string }) => x.namespace),
        perNamespace,
      );
      assert.equal(
        report.resources[0]!.resource,
        'configmaps',
        'the huge ConfigMap makes them the top consumer',
      );
      assert.ok(perResource.has('customresourcedefinitions.apiextensions.k8s.io'));
      assert.ok(perResource.has('widgets.example.com'));

      // The largest keys, decoded from their envelopes.
      assert.equal(report.top.length, 5);
      const huge = report.top[0]!;
      assert.equal(huge.key, '/registry/configmaps/apps/huge');
      assert.deepEqual(
        [
          huge.object.apiVersion,
          huge.object.kind,
          huge.object.namespace,
          huge.object.name,
          huge.object.creationTimestamp,
        ],
        ['v1', 'ConfigMap', 'apps', 'huge', '2023-11-14T22:13:20.500Z'],
      );
      const crd = report.resources.find(
        (x) => x.resource === 'customresourcedefinitions.apiextensions.k8s.io',
      );
      assert.equal(crd?.kind, 'CustomResourceDefinition');
      assert.equal(
        report.resources.find((x) => x.resource === 'widgets.example.com')?.kind,
        'Widget',
      );

      // Leases: the two event leases with their key counts and TTL.
      assert.deepEqual(
        report.leases.list.map((l) => [l.id, l.keys]),
        [
          [leaseIds[0], 20],
          [leaseIds[1], 10],
        ],
      );
      assert.ok(report.leases.list.every((l) => l.ttl! > 3500 && l.grantedTtl === 3600));
      assert.equal(report.leases.total, 2);
      assert.equal(report.leases.keysWithLease, 30);

      // Revision and compaction.
      const now = await client.kv.range({ key: Buffer.from('x'), count_only: true });
      assert.equal(report.revision, String(now.header.revision));
      assert.equal(report.compaction?.compactRevision, compactAt);
      assert.equal(report.compaction?.kubernetes?.lastRevision, String(compactAt));

      // Secrets at rest: 9 encrypted by aescbc key1, 6 in plain text; their data never shown.
      assert.deepEqual(report.secrets, {
        total: 15,
        encrypted: 9,
        plain: 6,
        providers: ['aescbc:key1'],
      });
      const text = captureIO(dir);
      assert.equal(await main(['keyspace'], text.io), 0);
      const shown = text.out.join('\n');
      assert.match(shown, /Secrets: 15, 9 encrypted at rest \(aescbc:key1\), 6 in plain text/);
      assert.match(shown, /configmaps\s+ConfigMap\s+16\s/);
      assert.doesNotMatch(shown, /hunter2/);

      // One key: a plain Secret shows its metadata only, an encrypted one its provider.
      const one = captureIO(dir);
      assert.equal(await main(['keyspace', '--show', '/registry/secrets/apps/plain-1'], one.io), 0);
      assert.match(one.out.join('\n'), /kind:\s+Secret[\s\S]*name:\s+plain-1[\s\S]*never shown/);
      assert.doesNotMatch(one.out.join('\n'), /hunter2/);
      const enc = captureIO(dir);
      assert.equal(
        await main(['keyspace', '--show', '/registry/secrets/kube-system/enc-0', '--json'], enc.io),
        0,
      );
      assert.deepEqual(JSON.parse(enc.out.join('\n')).encryption, {
        provider: 'aescbc',
        version: 'v1',
        key: 'key1',
      });
      const cr = captureIO(dir);
      assert.equal(
        await main(['keyspace', '--show', '/registry/example.com/widgets/apps/w-2'], cr.io),
        0,
      );
      assert.match(cr.out.join('\n'), /"size": 2/);
      const none = captureIO(dir);
      assert.equal(await main(['keyspace', '--show', '/registry/pods/apps/nope'], none.io), 1);

      // --prefix limits the scan; the summary for the NOSPACE rescue says the same.
      const pods = captureIO(dir);
      assert.equal(await main(['keyspace', '--json', '--prefix', '/registry/pods/'], pods.io), 0);
      const podReport = JSON.parse(pods.out.join('\n')) as KeyspaceReport;
      assert.deepEqual(
        podReport.resources.map((x) => [x.resource, x.keys]),
        [['pods', 40]],
      );
      // Small pages: many windows (etcd 3.4 pages near their start), the same counts.
      const small = await scanKeyspace(client, { pageBytes: 2048 });
      assert.ok(small.pages > 10, `${small.pages} pages`);
      assert.deepEqual(small.resources, report.resources);
      const summary = await keyspaceSummary(client, { top: 3 });
      assert.deepEqual(
        summary.resources,
        report.resources
          .slice(0, 3)
          .map(({ resource, keys, bytes }) => ({ resource, keys, bytes })),
      );
    } finally {
      client.close();
    }
  });
});
