/**
 * Member replacement, pure parts: the etcd role moving in k3s-etcd.yaml (the other lines, their
 * comments and spacing kept; a host with no role left removed), and the in-memory cluster the
 * replacement is provisioned with. The replacement itself runs on systemd hosts in
 * test/system/memberReplace.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { moveEtcdRole } from '../../src/core/inventory/edit';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { withEtcdMoved } from '../../src/core/recover/replace';
import { cluster, host } from '../fixtures/inventory';

const FLOW = `# the lab
version: 1
clusters:
  - name: lab
    hosts:
      - { name: edge-1, address: 10.0.0.1, roles: [etcd, k3s-server] } # first
      - { name: edge-3, address: 10.0.0.3, roles: [etcd] } # dead
      - { name: edge-4, address: 10.0.0.4, roles: [k3s-agent] } # spare
`;

async function withFile<T>(text: string, f: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-replace-'));
  try {
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(file, text);
    return await f(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('member replace: the inventory', () => {
  it('moves the etcd role in the text: a host left without a role goes, every other line stays', async () => {
    await withFile(FLOW, async (file) => {
      assert.deepEqual(await moveEtcdRole(file, 'lab', 'edge-3', 'edge-4'), { removedHost: true });
      assert.equal(
        await readFile(file, 'utf8'),
        FLOW.replace(
          '      - { name: edge-3, address: 10.0.0.3, roles: [etcd] } # dead\n',
          '',
        ).replace('roles: [k3s-agent]', 'roles: [k3s-agent, etcd]'),
      );
      assert.deepEqual(await moveEtcdRole(file, 'lab', 'edge-1', 'edge-4'), { removedHost: false });
      const text = await readFile(file, 'utf8');
      assert.match(text, /name: edge-1, address: 10\.0\.0\.1, roles: \[k3s-server\] } # first/);
      assert.match(text, /roles: \[k3s-agent, etcd\] } # spare/, 'etcd once');
      const r = await loadInventoryFile(file);
      assert.equal(r.status, 'ok', JSON.stringify(r.problems));
    });
  });

  it('block-style roles go through the YAML model and stay valid', async () => {
    const block = `version: 1
clusters:
  - name: lab
    hosts:
      - name: a
        address: 10.0.0.1
        roles:
          - etcd
      - name: b
        address: 10.0.0.2
        roles:
          - k3s-server
`;
    await withFile(block, async (file) => {
      assert.deepEqual(await moveEtcdRole(file, 'lab', 'a', 'b'), { removedHost: true });
      const r = await loadInventoryFile(file);
      assert.equal(r.status, 'ok', JSON.stringify(r.problems));
      if (r.status !== 'ok') return;
      assert.deepEqual(
        r.inventory.clusters[0]!.hosts.map((h) => [h.name, h.roles]),
        [['b', ['k3s-server', 'etcd']]],
      );
    });
  });

  it('the cluster provisioned for the replacement has the role moved, in memory', () => {
    const c = cluster('/ws/pki', [
      host('a', '10.0.0.1'),
      host('b', '10.0.0.2', { roles: ['etcd', 'k3s-server'] }),
      host('c', '10.0.0.3', { roles: ['k3s-agent'] }),
    ]);
    assert.deepEqual(
      withEtcdMoved(c, 'a', 'c').hosts.map((h) => [h.name, h.roles]),
      [
        ['b', ['etcd', 'k3s-server']],
        ['c', ['k3s-agent', 'etcd']],
      ],
    );
    assert.deepEqual(
      withEtcdMoved(c, 'b', 'c').hosts.map((h) => [h.name, h.roles]),
      [
        ['a', ['etcd']],
        ['b', ['k3s-server']],
        ['c', ['k3s-agent', 'etcd']],
      ],
    );
  });
});
