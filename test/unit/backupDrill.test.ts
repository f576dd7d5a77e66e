/**
 * The drill's restore into a throwaway etcd here: etcdutl when the local etcd folder has it (etcd
 * 3.5 and later; 3.6's etcdctl has no `snapshot restore` any more), else etcdctl (3.4).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restoreArgv } from '../../src/core/backup/drill';

describe('backup drill: the local restore command', () => {
  const args = [
    'snapshot',
    'restore',
    '/w/x.db',
    '--data-dir',
    '/w/data',
    '--name',
    'drill',
    '--initial-cluster',
    'drill=http://127.0.0.1:4001',
    '--initial-advertise-peer-urls',
    'http://127.0.0.1:4001',
  ];

  it('etcdutl when it is beside etcd', () => {
    const bins = { etcd: '/b/etcd', etcdctl: '/b/etcdctl', etcdutl: '/b/etcdutl' };
    assert.deepEqual(restoreArgv(bins, '/w/x.db', '/w/data', 'http://127.0.0.1:4001'), {
      file: '/b/etcdutl',
      args,
    });
  });

  it("etcdctl when there is no etcdutl (Debian's etcd 3.4)", () => {
    const bins = { etcd: '/usr/bin/etcd', etcdctl: '/usr/bin/etcdctl' };
    assert.deepEqual(restoreArgv(bins, '/w/x.db', '/w/data', 'http://127.0.0.1:4001'), {
      file: '/usr/bin/etcdctl',
      args,
    });
  });
});
