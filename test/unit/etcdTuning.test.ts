/**
 * etcd's tuning in the inventory: the keys' problems at their line and column, and what
 * provisioning writes for them (the env file's ETCD_* lines, the unit's ExecStart arguments).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatProblem, parseInventory } from '../../src/core/inventory/parse';
import type { Cluster, InventoryLoadResult } from '../../src/core/inventory/types';
import { parseFacts } from '../../src/core/etcd/memberHost';
import { planUpgradePath } from '../../src/core/etcdRelease/upgradePath';
import { envFile, unitFile, type MemberPlanInput } from '../../src/core/provision/memberPlan';

const FILE = '/work/site/k3s-etcd.yaml';

/** An inventory whose `etcd:` block is `etcdBlock` (lines indented by 6 spaces). */
function inventory(etcdBlock: string, roles = 'etcd'): string {
  return [
    'version: 1',
    'clusters:',
    '  - name: edge-a',
    '    etcd:',
    ...etcdBlock.split('\n').map((l) => `      ${l}`),
    '    hosts:',
    `      - { name: edge-1, address: 10.0.0.1, roles: [${roles}] }`,
    '',
  ].join('\n');
}

function parse(etcdBlock: string, roles?: string): InventoryLoadResult {
  return parseInventory(inventory(etcdBlock, roles), FILE);
}

const text = (r: InventoryLoadResult) => r.problems.map((p) => formatProblem(p)).join('\n');

function ok(r: InventoryLoadResult): Cluster {
  assert.equal(r.status, 'ok', text(r));
  if (r.status !== 'ok') throw new Error('unreachable');
  return r.inventory.clusters[0]!;
}

function rendered(c: Cluster): { env: string; unit: string } {
  const input: MemberPlanInput = {
    cluster: c,
    host: c.hosts[0]!,
    facts: parseFacts('machine=x86_64\ninit=systemd\n'),
    binaries: { kind: 'installed', path: '/usr/bin/etcd' },
    initialCluster: 'edge-1=https://10.0.0.1:2380',
    initialState: 'new',
  };
  return { env: envFile(input), unit: unitFile(input) };
}

describe('etcd tuning: quotaBackendBytes and extraArgs', () => {
  it('a quota in bytes or GiB becomes ETCD_QUOTA_BACKEND_BYTES; extraArgs go on ExecStart', () => {
    const c = ok(
      parse(
        'version: v3.4.23\nquotaBackendBytes: 4GiB\nextraArgs: [--log-level=warn, --enable-pprof]',
      ),
    );
    assert.equal(c.etcd.tuning.quotaBackendBytes, 4 * 2 ** 30);
    const { env, unit } = rendered(c);
    assert.match(env, /^ETCD_QUOTA_BACKEND_BYTES=4294967296$/m);
    assert.doesNotMatch(env, /LOG_LEVEL|PPROF/);
    assert.match(unit, /^ExecStart=\/usr\/bin\/etcd --log-level=warn --enable-pprof$/m);

    const bytes = ok(parse('quotaBackendBytes: 16777216'));
    assert.match(rendered(bytes).env, /^ETCD_QUOTA_BACKEND_BYTES=16777216$/m);
    // Nothing set: no tuning line, ExecStart as before.
    const plain = rendered(ok(parse('clientPort: 2379')));
    assert.doesNotMatch(plain.env, /QUOTA/);
    assert.match(plain.unit, /^ExecStart=\/usr\/bin\/etcd$/m);
  });

  it('flags the tool owns or that have a key of their own are refused at their line', () => {
    const r = parse(
      [
        'extraArgs:',
        '  - --log-level=info',
        '  - --data-dir=/tmp/x',
        '  - --quota-backend-bytes=1',
        '  - --listen-client-urls=http://0.0.0.0:2379',
        '  - --log-level=debug',
      ].join('\n'),
    );
    assert.equal(r.status, 'invalid');
    const lines = text(r).split('\n');
    assert.deepEqual(lines, [
      'k3s-etcd.yaml:7:11 clusters[0].etcd.extraArgs[1]: --data-dir is set by k3s-etcd from etcd.dataDir: remove it from extraArgs',
      'k3s-etcd.yaml:8:11 clusters[0].etcd.extraArgs[2]: --quota-backend-bytes has its own key: set etcd.quotaBackendBytes instead of extraArgs',
      'k3s-etcd.yaml:9:11 clusters[0].etcd.extraArgs[3]: --listen-client-urls is set by k3s-etcd from the host address and etcd.clientPort: remove it from extraArgs',
      'k3s-etcd.yaml:10:11 clusters[0].etcd.extraArgs[4]: --log-level is given twice (also extraArgs[0])',
    ]);
  });

  it('an entry that is not --flag=value, or whose value systemd would read, is refused', () => {
    const r = parse(
      'extraArgs: ["log-level=warn", "--log-level=a b", "--x=$HOME", "--y=50%", "--Z=1"]',
    );
    assert.equal(r.status, 'invalid');
    const t = text(r);
    assert.match(t, /extraArgs\[0\]: "log-level=warn" is not --flag=value/);
    assert.match(t, /extraArgs\[1\]: the value of --log-level may hold letters/);
    assert.match(t, /extraArgs\[2\]: the value of --x may hold/);
    assert.match(t, /extraArgs\[3\]: the value of --y may hold/);
    assert.match(t, /extraArgs\[4\]: "--Z=1" is not --flag=value/);
  });

  it('quota: a bad size is a schema problem; above 8 GiB a warning', () => {
    const bad = parse('quotaBackendBytes: 4GB');
    assert.equal(bad.status, 'invalid');
    assert.match(text(bad), /k3s-etcd\.yaml:5:26 clusters\[0\]\.etcd\.quotaBackendBytes: "4GB"/);
    const big = parse('quotaBackendBytes: 16GiB');
    assert.equal(big.status, 'ok');
    assert.match(
      text(big),
      /k3s-etcd\.yaml:5:26 warning: clusters\[0\]\.etcd\.quotaBackendBytes: a quota above 8 GiB is beyond etcd's guidance/,
    );
  });
});

describe('etcd tuning: timing, compaction, TLS and the version', () => {
  it('profile edge sets 500/5000 ms; keys win over it; election < 5 heartbeats is refused', () => {
    const edge = ok(parse('profile: edge'));
    assert.deepEqual(edge.etcd.tuning, {
      profile: 'edge',
      heartbeatInterval: 500,
      electionTimeout: 5000,
    });
    assert.match(rendered(edge).env, /^ETCD_HEARTBEAT_INTERVAL=500\nETCD_ELECTION_TIMEOUT=5000$/m);
    const own = ok(parse('profile: edge\nelectionTimeout: 10000'));
    assert.equal(own.etcd.tuning.electionTimeout, 10000);

    const short = parse('heartbeatInterval: 300\nelectionTimeout: 1000');
    assert.equal(short.status, 'invalid');
    assert.equal(
      text(short),
      'k3s-etcd.yaml:6:24 clusters[0].etcd.electionTimeout: electionTimeout (1000 ms) must be at least 5 times heartbeatInterval (300 ms): etcd refuses to start otherwise; set electionTimeout to 1500 or more',
    );
    // Only the heartbeat given: etcd's default election timeout (1000 ms) is too short for it.
    assert.match(
      text(parse('heartbeatInterval: 250')),
      /5:26 clusters\[0\]\.etcd\.heartbeatInterval: electionTimeout \(1000 ms, etcd's default\)/,
    );
    assert.match(text(parse('electionTimeout: 60000')), /at most 50000/);
  });

  it('compaction: revision wants a count; a mode without retention is a warning', () => {
    const c = ok(parse('autoCompactionMode: revision\nautoCompactionRetention: 1000'));
    assert.match(
      rendered(c).env,
      /^ETCD_AUTO_COMPACTION_MODE=revision\nETCD_AUTO_COMPACTION_RETENTION=1000$/m,
    );
    assert.match(
      text(parse('autoCompactionMode: revision\nautoCompactionRetention: 1h')),
      /autoCompactionRetention: with autoCompactionMode revision the retention is a number of revisions/,
    );
    const alone = parse('autoCompactionMode: periodic');
    assert.equal(alone.status, 'ok');
    assert.match(text(alone), /warning: .*autoCompactionMode does nothing without/);
    assert.match(text(parse('autoCompactionRetention: 1 day')), /autoCompactionRetention: "1 day"/);
  });

  it('TLS: cipher suites with TLS 1.3 only are refused; tlsMinVersion needs 3.4.25+', () => {
    const both = parse(
      'tlsMinVersion: TLS1.3\ncipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]',
    );
    assert.match(text(both), /cipherSuites: cipherSuites cannot be set with tlsMinVersion TLS1\.3/);
    const old = parse('version: v3.4.23\ntlsMinVersion: TLS1.2');
    assert.equal(old.status, 'invalid');
    assert.match(
      text(old),
      /6:22 clusters\[0\]\.etcd\.tlsMinVersion: etcd v3\.4\.23 has no --tls-min-version/,
    );
    assert.match(text(parse('cipherSuites: [aes128]')), /cipherSuites\[0\]: "aes128" is not valid/);
  });

  it('version: known-bad and below-K3s versions are warnings with the reason', () => {
    const learner = parse('version: v3.5.17');
    assert.equal(learner.status, 'ok');
    assert.match(
      text(learner),
      /^k3s-etcd\.yaml:5:16 warning: clusters\[0\]\.etcd\.version: etcd 3\.5\.1 to 3\.5\.19 may lose a learner promotion/,
    );
    // The way out is a patch the upgrade to 3.6 starts from (its planner's floor), not one it
    // would refuse to leave 3.5 from.
    assert.match(text(learner), /: use v3\.6\.14, or a 3\.5 from v3\.5\.32 \(/);
    assert.equal(planUpgradePath('v3.5.32', 'v3.6.14').ok, true);
    assert.equal(
      (planUpgradePath('v3.5.32', 'v3.6.14') as { steps: Array<{ kind: string }> }).steps[0]?.kind,
      'minor',
      'no patch step first',
    );
    // Debian's 3.4.23 (what the tests run) is only below K3s's floor when a K3s server uses it.
    assert.equal(text(parse('version: v3.4.23')), '');
    assert.match(
      text(parse('version: v3.4.23', 'etcd, k3s-server')),
      /warning: clusters\[0\]\.etcd\.version: Kubernetes 1\.31 and later \(K3s v1\.31\+\) assume etcd 3\.4\.29\+ or 3\.5\.11\+; v3\.4\.23 is below v3\.4\.29: K3s may fail on this etcd/,
    );
    assert.equal(text(parse('version: v3.6.14', 'etcd, k3s-server')), '');
    assert.match(text(parse('version: v3.8.0')), /not a release k3s-etcd knows/);
  });
});
