/**
 * Restoring a snapshot, the parts that read no host: the snapshot checked against its record
 * (and refused, by the CLI too, before any host is reached), the plan's paths, token and
 * commands, the tool per etcd version, the env file's ETCD_INITIAL_* lines, and each phase's
 * script valid POSIX sh with the steps in the order that keeps the old data.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { chooseTool, planRestore, verifySnapshot } from '../../src/core/restore/plan';
import { restoreHostPlans, withInitialLines } from '../../src/core/restore/phases';
import { listSnapshots } from '../../src/core/snapshot/snapshot';
import { restoreCommands, type SnapshotInfo } from '../../src/core/etcd/snapshotFile';
import { K3sEtcdError } from '../../src/core/errors';
import { parseFacts } from '../../src/core/etcd/memberHost';
import { renderScript } from '../../src/core/plan/render';
import { sha256 } from '../../src/core/plan/steps';
import { cluster, host } from '../fixtures/inventory';
import { captureIO } from '../fixtures/cli';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';

describe('snapshot restore: plan and refusals', () => {
  let dir = '';
  let file = '';
  const data = Buffer.from('not really a bolt database, but bytes with a record\n');
  const hosts = [host('edge-1', '127.0.1.131'), host('edge-2', '127.0.1.132')];

  before(async () => {
    dir = await makeTempDir('k3s-etcd-restore-unit-');
    await mkdir(join(dir, 'backups', 'edge-t'), { recursive: true });
    file = join(dir, 'backups', 'edge-t', '20250102T030405Z.db');
    await writeFile(file, data);
    const record: SnapshotInfo = {
      cluster: 'edge-t',
      file,
      sha256: sha256(data),
      bytes: data.length,
      revision: '42',
      from: 'https://127.0.1.131:2379',
      createdAt: '2025-01-02T03:04:05.000Z',
    };
    await writeFile(file.replace(/\.db$/, '.json'), JSON.stringify(record));
  });
  after(async () => {
    await removeTempDir(dir);
  });

  it('plans every member from the inventory: upload path, restored and kept dirs, a new token', async () => {
    const c = cluster(dir, hosts);
    const plan = await planRestore(c, file, { now: new Date('2025-02-03T04:05:06Z') });
    assert.equal(plan.stamp, '20250203T040506Z');
    assert.equal(plan.token, 'k3s-etcd-edge-t-restored-20250203T040506Z');
    assert.equal(plan.tool, 'etcdctl');
    assert.equal(plan.snapshot.revision, '42');
    assert.deepEqual(
      plan.members.map((m) => [m.host, m.upload, m.restoredDir, m.keptAs]),
      hosts.map((h) => [
        h.name,
        '/var/lib/k3s-etcd/restore/20250102T030405Z.db',
        '/var/lib/etcd.restored',
        '/var/lib/etcd.before-restore-20250203T040506Z',
      ]),
    );
    assert.equal(
      plan.members[1]!.command,
      'ETCDCTL_API=3 /usr/local/bin/etcdctl snapshot restore /var/lib/k3s-etcd/restore/20250102T030405Z.db --name edge-2 --initial-cluster edge-1=https://127.0.1.131:2380,edge-2=https://127.0.1.132:2380 --initial-cluster-token k3s-etcd-edge-t-restored-20250203T040506Z --initial-advertise-peer-urls https://127.0.1.132:2380 --data-dir /var/lib/etcd.restored',
    );
    // etcd 3.5: etcdutl.
    const c35 = { ...c, etcd: { ...c.etcd, version: 'v3.5.17' } };
    assert.match(
      (await planRestore(c35, file)).members[0]!.command,
      /^\/usr\/local\/bin\/etcdutl snapshot restore /,
    );
    // restore-commands keeps its output (tool from PATH, token -restored).
    assert.match(
      restoreCommands(c, '/x.db')[0]!.command,
      /^ETCDCTL_API=3 etcdctl snapshot restore \/x\.db .*--initial-cluster-token k3s-etcd-edge-t-restored /,
    );
  });

  it('refuses a snapshot whose bytes differ from its record, or of another cluster, or without a record', async () => {
    const c = cluster(dir, hosts);
    const bad = join(dir, 'backups', 'edge-t', '20250102T030406Z.db');
    await writeFile(bad, Buffer.concat([data, Buffer.from('x')]));
    await writeFile(
      bad.replace(/\.db$/, '.json'),
      JSON.stringify({
        cluster: 'edge-t',
        sha256: sha256(data),
        bytes: data.length,
        revision: '1',
        from: 'https://127.0.1.131:2379',
        createdAt: '2025-01-02T03:04:06.000Z',
      }),
    );
    await assert.rejects(verifySnapshot(c, bad), (err: unknown) => {
      assert.ok(err instanceof K3sEtcdError);
      assert.equal(err.code, 'snapshot-invalid');
      assert.match(err.message, /does not match its record: the file has 53 bytes/);
      assert.match(err.message, /nothing was done on any host/);
      return true;
    });
    await assert.rejects(
      verifySnapshot({ ...c, name: 'other' }, file),
      /snapshot of cluster edge-t, not of other/,
    );
    const lone = join(dir, '20250102T030407Z.db');
    await writeFile(lone, data);
    await assert.rejects(verifySnapshot(c, lone), /has no readable record beside it/);
    await assert.rejects(
      planRestore({ ...c, datastore: 'k3s-embedded-etcd' }, file),
      /K3s restores it itself/,
    );
  });

  it('the CLI refuses the damaged snapshot before reaching any host (their addresses answer nothing)', async () => {
    const bad = join(dir, 'backups', 'edge-t', '20250102T030406Z.db');
    await writeFile(
      join(dir, 'k3s-etcd.yaml'),
      [
        'version: 1',
        'clusters:',
        '  - name: edge-t',
        '    hosts:',
        '      - { name: edge-1, address: 127.0.1.131, roles: [etcd] }',
        '',
      ].join('\n'),
    );
    const { io, out } = captureIO(dir);
    const code = await main(['snapshot', 'restore', '--file', bad, '--yes'], io);
    assert.equal(code, 1, out.join('\n'));
    assert.match(out.join('\n'), /does not match its record/);
    assert.doesNotMatch(out.join('\n'), /edge-1 \(127\.0\.1\.131\)|ssh/i);
    const usage = await main(['snapshot', 'restore', '--yes'], captureIO(dir).io);
    assert.equal(usage, 2);
  });

  it('a snapshot whose name would end a line of the scripts is refused before any plan exists', async () => {
    const c = cluster(dir, hosts);
    const hostile = join(dir, 'backups', 'edge-t', '20250102T030405Z.db\ntouch injected\n.db');
    await writeFile(hostile, data);
    await writeFile(
      hostile.replace(/\.db$/, '.json'),
      await readFile(file.replace(/\.db$/, '.json'), 'utf8'),
    );
    await assert.rejects(planRestore(c, hostile), (err: unknown) => {
      assert.ok(err instanceof K3sEtcdError);
      assert.equal(err.code, 'snapshot-invalid');
      assert.match(
        err.message,
        /is not named as k3s-etcd names snapshots \(the UTC time it was saved, such as 20250102T030405Z\.db/,
      );
      return true;
    });
    // A record whose fields are not what snapshot save writes is refused too.
    const odd = join(dir, 'backups', 'edge-t', '20250102T030408Z.db');
    await writeFile(odd, data);
    const record = JSON.parse(await readFile(file.replace(/\.db$/, '.json'), 'utf8')) as object;
    await writeFile(
      odd.replace(/\.db$/, '.json'),
      JSON.stringify({ ...record, revision: '42\ntouch injected' }),
    );
    await assert.rejects(planRestore(c, odd), /its revision is not a number/);
  });

  it('lists the snapshots the folder holds, never the file a record names', async () => {
    const ws = join(dir, 'listing');
    const folder = join(ws, 'backups', 'list-t');
    await mkdir(folder, { recursive: true });
    const rec = (over: Partial<SnapshotInfo> = {}) =>
      JSON.stringify({
        cluster: 'list-t',
        file: '/etc/shadow',
        sha256: sha256(data),
        bytes: data.length,
        revision: '7',
        from: 'https://127.0.1.131:2379',
        createdAt: '2025-01-02T03:04:05.000Z',
        ...over,
      });
    // Ours, with a record that names another file.
    await writeFile(join(folder, '20250102T030405Z.db'), data);
    await writeFile(join(folder, '20250102T030405Z.json'), rec());
    // A record without its snapshot; a snapshot with a hostile name; a symlink; a bad record.
    await writeFile(join(folder, '20250103T000000Z.json'), rec());
    await writeFile(join(folder, 'x\ntouch y\n.db'), data);
    await writeFile(join(folder, 'x\ntouch y\n.json'), rec());
    await symlink('/etc/hostname', join(folder, '20250104T000000Z.db'));
    await writeFile(join(folder, '20250104T000000Z.json'), rec());
    await writeFile(join(folder, '20250105T000000Z.db'), data);
    await writeFile(join(folder, '20250105T000000Z.json'), rec({ revision: '1\n2' }));
    const list = await listSnapshots(ws, 'list-t');
    assert.deepEqual(
      list.map((s) => [s.file, s.revision]),
      [[join(folder, '20250102T030405Z.db'), '7']],
    );
  });

  it('chooses etcdutl from 3.5, etcdctl up to 3.5, and says what is missing for 3.6', () => {
    assert.deepEqual(chooseTool('v3.4.23', ['etcdctl'], '/usr/local/bin'), { tool: 'etcdctl' });
    assert.deepEqual(chooseTool('3.5.17', ['etcdctl', 'etcdutl'], '/b'), { tool: 'etcdutl' });
    assert.deepEqual(chooseTool('3.5.17', ['etcdctl'], '/b'), { tool: 'etcdctl' });
    const r = chooseTool('v3.6.1', ['etcdctl'], '/usr/local/bin');
    assert.ok('error' in r);
    assert.match(
      r.error,
      /etcdctl snapshot restore was removed in 3\.6.*\/usr\/local\/bin\/etcdutl is not there/,
    );
  });

  it('replaces the env file ETCD_INITIAL_* lines in place, other lines kept', () => {
    const env = 'A=1\nETCD_INITIAL_CLUSTER=x\nB=2\nETCD_INITIAL_CLUSTER_TOKEN=t\nC=3\n';
    assert.equal(
      withInitialLines(env, ['ETCD_INITIAL_X=1', 'ETCD_INITIAL_Y=2']),
      'A=1\nETCD_INITIAL_X=1\nETCD_INITIAL_Y=2\nB=2\nC=3\n',
    );
    assert.equal(withInitialLines('A=1\n', ['ETCD_INITIAL_X=1']), 'A=1\nETCD_INITIAL_X=1\n');
  });

  it('renders each phase as valid POSIX sh: stop, restore, then old data moved aside before the restored dir is put in place', async () => {
    const c = cluster(dir, hosts);
    const plan = await planRestore(c, file, { now: new Date('2025-02-03T04:05:06Z') });
    const facts = parseFacts(
      'machine=x86_64\ninit=systemd\netcd_path=/usr/local/bin/etcd\netcd_version=3.4.23\nhas_data=1\n',
    );
    const plans = restoreHostPlans(c, plan, hosts[0]!, {
      facts,
      env: 'ETCD_NAME=edge-1\nETCD_INITIAL_CLUSTER_TOKEN=edge-t\nETCD_INITIAL_CLUSTER_STATE=new\n',
      binDir: '/usr/local/bin',
      tools: ['etcdctl'],
    });
    for (const [phase, p] of Object.entries(plans)) {
      const r = spawnSync('/bin/sh', ['-n'], { input: renderScript(p), encoding: 'utf8' });
      assert.equal(r.status, 0, `${phase}: ${r.stderr}`);
    }
    assert.deepEqual(
      plans.prepare.payloads.map((p) => [p.name, p.localPath, p.step]),
      [['snapshot.db', file, 'upload']],
    );
    assert.deepEqual(
      plans.stop.steps.map((s) => s.id),
      ['stop'],
    );
    assert.deepEqual(
      plans.restore.steps.map((s) => s.id),
      ['restore'],
    );
    assert.deepEqual(
      plans.start.steps.map((s) => s.id),
      ['aside', 'place', 'marker', 'env', 'start', 'active', 'cleanup'],
    );
    // The host's command names every member (not only itself): one cluster, not three.
    assert.match(
      renderScript(plans.restore),
      /--name edge-1 --initial-cluster edge-1=https:\/\/127\.0\.1\.131:2380,edge-2=https:\/\/127\.0\.1\.132:2380 /,
    );
    const start = renderScript(plans.start);
    assert.match(start, /mv \/var\/lib\/etcd \/var\/lib\/etcd\.before-restore-20250203T040506Z/);
    assert.doesNotMatch(start, /rm -rf \/var\/lib\/etcd(\s|$)/);
    assert.match(
      start,
      /ETCD_INITIAL_CLUSTER_TOKEN=k3s-etcd-edge-t-restored-20250203T040506Z\nETCD_INITIAL_CLUSTER_STATE=existing\n/,
    );
    assert.match(start, /journalctl -u etcd/);
    assert.throws(
      () =>
        restoreHostPlans({ ...c, etcd: { ...c.etcd, version: 'v3.6.1' } }, plan, hosts[0]!, {
          facts: { ...facts, etcdVersion: '3.6.1' },
          env: '',
          binDir: '/usr/local/bin',
          tools: ['etcdctl'],
        }),
      /edge-1: etcd 3\.6\.1 restores with etcdutl/,
    );
  });
});
