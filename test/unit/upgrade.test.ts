/**
 * The upgrade as a plan (pure): the path planner behind it (one minor at a time, patch floors,
 * refusals with their reason), the members' versions it starts from, tuning a hop cannot render,
 * uploaded binaries that cannot serve every hop, the flag names a hop changes, and the dry run's
 * words. The surgical edit of etcd.version keeps comments. The mechanics on real hosts are in
 * test/system/upgrade.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setEtcdVersion } from '../../src/core/inventory/edit';
import type { Cluster } from '../../src/core/inventory/types';
import type { RollingPlan } from '../../src/core/rolling/restarts';
import {
  flagChanges,
  planUpgrade,
  upgradeLines,
  type BinaryLayout,
  type MemberVersion,
} from '../../src/core/upgrade/plan';
import { cluster, host } from '../fixtures/inventory';

const three = (): Cluster =>
  cluster('/pki', [host('a', '10.0.0.1'), host('b', '10.0.0.2'), host('c', '10.0.0.3')]);
const running = (...versions: string[]): MemberVersion[] =>
  versions.map((v, i) => ({
    member: 'abc'[i]!,
    endpoint: `https://10.0.0.${i + 1}:2379`,
    version: v,
  }));
const download: BinaryLayout = {
  kind: 'download',
  url: 'https://github.com/etcd-io/etcd/releases/download/{version}/etcd-{version}-linux-{arch}.tar.gz',
};

const ok = (p: ReturnType<typeof planUpgrade>) => {
  assert.ok(p.ok, p.ok ? '' : p.reason);
  return p;
};
const refused = (p: ReturnType<typeof planUpgrade>): string => {
  assert.equal(p.ok, false, JSON.stringify(p));
  return p.ok ? '' : p.reason;
};

describe('upgrade plan: the path from what the members run', () => {
  it('3.4.23 → 3.6.14: up to the 3.4 floor, then one minor at a time, each hop with its binaries', () => {
    const p = ok(planUpgrade(three(), running('3.4.23', '3.4.23', '3.4.23'), 'v3.6.14', download));
    assert.equal(p.from, 'v3.4.23');
    assert.deepEqual(
      p.hops.map((h) => `${h.from}→${h.to} ${h.kind}`),
      ['v3.4.23→v3.4.45 patch', 'v3.4.45→v3.5.33 minor', 'v3.5.33→v3.6.14 minor'],
    );
    assert.match(p.hops[1]!.binaries, /download\/v3\.5\.33\/etcd-v3\.5\.33-linux-\{arch\}/);
  });

  it('members on different versions: the path starts from the lowest, and says so', () => {
    const p = ok(planUpgrade(three(), running('3.4.45', '3.4.23', '3.4.45'), 'v3.4.45', download));
    assert.equal(p.from, 'v3.4.23');
    assert.deepEqual(
      p.hops.map((h) => h.to),
      ['v3.4.45'],
    );
    assert.match(p.notes[0] ?? '', /different versions \(a v3\.4\.45, b v3\.4\.23, c v3\.4\.45\)/);
  });

  it('refuses a downgrade, a known-bad target and a target beyond the known releases, with the reason', () => {
    const now = running('3.5.33', '3.5.33', '3.5.33');
    assert.match(
      refused(planUpgrade(three(), now, 'v3.4.45', download)),
      /v3\.4\.45 is older than v3\.5\.33: etcd does not go back by an upgrade/,
    );
    assert.match(
      refused(planUpgrade(three(), running('3.4.45', '3.4.45', '3.4.45'), 'v3.5.10', download)),
      /v3\.5\.10 is a bad target: .*learner promotion/,
    );
    assert.match(
      refused(planUpgrade(three(), now, 'v3.9.0', download)),
      /beyond the etcd releases k3s-etcd knows/,
    );
  });

  it('refuses when a member does not answer, naming it', () => {
    const m = running('3.4.23', '3.4.23', '3.4.23');
    m[1] = { member: 'b', endpoint: 'https://10.0.0.2:2379', problem: 'connection refused' };
    assert.match(
      refused(planUpgrade(three(), m, 'v3.4.45', download)),
      /every member must answer before an upgrade, and b \(connection refused\) did not/,
    );
  });

  it('refuses tuning a hop cannot render, binaries it did not install, and the embedded etcd', () => {
    const c = three();
    c.etcd.tuning = { extraArgs: ['--enable-v2=true'] };
    assert.match(
      refused(planUpgrade(c, running('3.5.33', '3.5.33', '3.5.33'), 'v3.6.14', download)),
      /does not work on v3\.6\.14: etcd\.extraArgs\[0\]: --enable-v2 does not exist in v3\.6\.14/,
    );
    const installed = planUpgrade(three(), running('3.4.23', '3.4.23', '3.4.23'), 'v3.4.45', {
      kind: 'installed',
    });
    assert.match(refused(installed), /does not replace binaries it did not install/);
    const embedded = { ...three(), datastore: 'k3s-embedded-etcd' as const };
    assert.match(
      refused(planUpgrade(embedded, running('3.5.33'), 'v3.6.14', download)),
      /embedded etcd/,
    );
  });

  it('upload: a folder of release tarballs serves every hop; one binary serves one hop only', () => {
    const now = running('3.4.45', '3.4.45', '3.4.45');
    const single: BinaryLayout = { kind: 'upload', path: '/srv/etcd', tarballs: [], single: true };
    assert.match(
      refused(planUpgrade(three(), now, 'v3.6.14', single)),
      /the path has 2 hop\(s\) \(v3\.4\.45 → v3\.5\.33 → v3\.6\.14\) and etcd\.install is upload: .*missing: etcd-v3\.5\.33-linux-<arch>\.tar\.gz, etcd-v3\.6\.14-linux-<arch>\.tar\.gz/,
    );
    ok(planUpgrade(three(), now, 'v3.5.33', single));
    const folder: BinaryLayout = {
      kind: 'upload',
      path: '/srv/etcd',
      tarballs: ['v3.5.33', 'v3.6.14'],
      single: false,
    };
    const p = ok(planUpgrade(three(), now, 'v3.6.14', folder));
    assert.equal(p.hops[1]!.binaries, 'uploaded: etcd-v3.6.14-linux-<arch>.tar.gz from /srv/etcd');
  });
});

describe('upgrade plan: flags per hop', () => {
  it('names the flags whose names change: the corruption checks become feature gates on 3.6', () => {
    const tuning = { quotaBackendBytes: 8 * 2 ** 30, corruptCheck: true, compactHashCheck: true };
    assert.deepEqual(flagChanges(tuning, 'v3.5.33', 'v3.6.14'), [
      {
        key: 'corruptCheck',
        from: '--experimental-initial-corrupt-check=true',
        to: '--feature-gates=InitialCorruptCheck=true',
      },
      {
        key: 'compactHashCheck',
        from: '--experimental-compact-hash-check-enabled=true',
        to: '--feature-gates=CompactHashCheck=true',
      },
    ]);
    assert.deepEqual(flagChanges(tuning, 'v3.4.23', 'v3.5.33'), []);
  });

  it('a deprecated extraArgs flag is a warning on the hop, not a refusal', () => {
    const c = three();
    c.etcd.tuning = { extraArgs: ['--experimental-compaction-batch-limit=1000'] };
    const p = ok(planUpgrade(c, running('3.5.33', '3.5.33', '3.5.33'), 'v3.6.14', download));
    assert.match(p.hops[0]!.warnings[0] ?? '', /deprecated in etcd 3\.6 and gone in 3\.7/);
    assert.match(
      refused(planUpgrade(c, running('3.6.14', '3.6.14', '3.6.14'), 'v3.7.1', download)),
      /has no --experimental-\* flags: use --compaction-batch-limit/,
    );
  });
});

describe('upgrade dry run in words', () => {
  it('shows the path, the snapshot, each hop with binaries, flags and rolling order, the rollback and the inventory', () => {
    const c = three();
    c.etcd.tuning = { corruptCheck: true };
    const p = ok(planUpgrade(c, running('3.5.33', '3.5.33', '3.5.33'), 'v3.7.1', download));
    const rolling: RollingPlan = {
      mode: 'rolling',
      order: ['a', 'c', 'b'].map((m) => ({
        host: m,
        member: m,
        unit: 'etcd',
        kind: 'restart' as const,
        why: ['install etcd 3.6.14'],
        role: m === 'b' ? ('leader' as const) : ('follower' as const),
      })),
      filesOnly: [],
    };
    const lines = upgradeLines(p, { snapshotDir: 'backups/edge-t', rolling: [rolling] });
    assert.deepEqual(lines, [
      'Upgrade etcd of cluster edge-t from v3.5.33 to v3.7.1: v3.5.33 → v3.6.14 → v3.7.1 (one minor at a time; members now: a 3.5.33, b 3.5.33, c 3.5.33)',
      '1. a snapshot first, into backups/edge-t/<UTC time>.db, checked against its record (SHA-256, bytes, revision) before anything changes',
      '2. hop 1/2: v3.5.33 → v3.6.14 (one minor at a time: 3.5 -> 3.6 at its newest patch, on the way to v3.7.1)',
      "   binaries: downloaded on each host from https://github.com/etcd-io/etcd/releases/download/v3.6.14/etcd-v3.6.14-linux-{arch}.tar.gz (checked against the release's SHA256SUMS)",
      '   flags: etcd.corruptCheck: --experimental-initial-corrupt-check=true → --feature-gates=InitialCorruptCheck=true',
      '   etcd restarts on 3 member(s), one at a time (each healthy and caught up before the next; the leader last, after handing its leadership to a follower):',
      '     1. a (follower): restarts for install etcd 3.6.14',
      '     2. c (follower): restarts for install etcd 3.6.14',
      '     3. b (leader): restarts for install etcd 3.6.14',
      '   then the cluster version must reach 3.6 before the next hop',
      '3. hop 2/2: v3.6.14 → v3.7.1 (one minor at a time: 3.6 -> 3.7)',
      "   binaries: downloaded on each host from https://github.com/etcd-io/etcd/releases/download/v3.7.1/etcd-v3.7.1-linux-{arch}.tar.gz (checked against the release's SHA256SUMS)",
      '   flags: the same names on v3.7.1',
      '   rolling: member by member as in hop 1 (read again when the hop starts)',
      '   then the cluster version must reach 3.7 before the inventory is updated',
      '4. each restarted member keeps its previous binaries as /usr/local/bin/etcd.previous and /usr/local/bin/etcdctl.previous (root, 0755) for a one-step rollback',
      '5. etcd.version in k3s-etcd.yaml becomes v3.7.1 (only that value changes; comments are kept)',
    ]);
  });

  it('nothing to do when every member already runs the target', () => {
    const p = ok(planUpgrade(three(), running('3.4.45', '3.4.45', '3.4.45'), 'v3.4.45', download));
    assert.deepEqual(upgradeLines(p, { snapshotDir: 'backups/edge-t' }), [
      'Cluster edge-t already runs v3.4.45 (a 3.4.45, b 3.4.45, c 3.4.45): nothing to upgrade.',
    ]);
  });
});

describe('etcd.version in the inventory after an upgrade', () => {
  it('replaces the value in place (comments and flow style kept), or adds the key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-upgrade-'));
    try {
      const file = join(dir, 'k3s-etcd.yaml');
      const text = [
        '# lab',
        'version: 1',
        'clusters:',
        '  - name: roll # the cluster',
        '    etcd: { version: v3.4.23, install: upload, uploadPath: etcd-bin } # offline',
        '    hosts: []',
        '  - name: other',
        '    etcd:',
        '      install: download # default version',
        '    hosts: []',
        '',
      ].join('\n');
      await writeFile(file, text);
      assert.equal(await setEtcdVersion(file, 'roll', 'v3.4.45'), 'v3.4.23');
      assert.equal(await readFile(file, 'utf8'), text.replace('v3.4.23', 'v3.4.45'));
      assert.equal(await setEtcdVersion(file, 'other', 'v3.6.14'), undefined);
      const after = await readFile(file, 'utf8');
      assert.match(after, /install: download # default version\n\s+version: v3\.6\.14\n/);
      assert.match(after, /^# lab\n/);
      await assert.rejects(setEtcdVersion(file, 'roll', '3.x; rm -rf /'), /not an etcd version/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
