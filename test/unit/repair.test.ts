/**
 * The repair plan the confirmation shows, in the order the repair runs it: per datastore and
 * cluster size (pure; the real repairs run in test/system/repair.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseInventory } from '../../src/core/inventory/parse';
import type { Cluster } from '../../src/core/inventory/types';
import type { SshContext } from '../../src/core/ssh/hostSession';
import {
  diagnosePeerUrl,
  fixPeerUrl,
  repairPlanLines,
  repairSteps,
  type PeerUrlDiagnosis,
} from '../../src/core/repair/peerUrl';

function clusterOf(text: string): Cluster {
  const r = parseInventory(text, '/ws/k3s-etcd.yaml');
  assert.equal(r.status, 'ok', JSON.stringify(r.status === 'ok' ? [] : r.problems));
  return (r as { inventory: { clusters: Cluster[] } }).inventory.clusters[0] as Cluster;
}

const diagnosis = (c: Cluster, single: boolean): Omit<PeerUrlDiagnosis, 'steps'> => ({
  cluster: c.name,
  host: 'a',
  member: 'a',
  memberId: '8e9e05c52164694d',
  oldAddress: '10.0.0.1',
  newAddress: '10.0.0.9',
  newPeerUrl: 'https://10.0.0.9:2380',
  hostAddresses: ['10.0.0.9'],
  stale: [],
  via: 'x',
  quorum: { ok: true, why: 'ok' },
  single,
  datastore: c.datastore,
});

describe('fix peer URL plan', () => {
  it('a single external member is updated through itself after its restart; K3s servers are named', () => {
    const c = clusterOf(
      'version: 1\nclusters:\n  - name: c\n    hosts:\n      - { name: a, address: 10.0.0.1, roles: [etcd] }\n      - { name: s, address: 10.0.0.5, roles: [k3s-server] }\n',
    );
    const steps = repairSteps(c, diagnosis(c, true));
    const restart = steps.findIndex((s) => /restart etcd/.test(s));
    const update = steps.findIndex((s) =>
      /member update 8e9e05c52164694d --peer-urls=https:\/\/10\.0\.0\.9:2380 through the member itself/.test(
        s,
      ),
    );
    assert.ok(restart > 0 && update > restart, steps.join('\n'));
    assert.match(
      steps.at(-1) ?? '',
      /K3s servers s: where config\.yaml's datastore-endpoint names https:\/\/10\.0\.0\.1:2379, rewrite it to https:\/\/10\.0\.0\.9:2379 .*restart K3s and wait until Ready, one server at a time/,
    );
  });

  it('several external members: the update goes through a healthy member before the restart', () => {
    const c = clusterOf(
      'version: 1\nclusters:\n  - name: c\n    hosts:\n      - { name: a, address: 10.0.0.1, roles: [etcd] }\n      - { name: b, address: 10.0.0.2, roles: [etcd] }\n      - { name: d, address: 10.0.0.3, roles: [etcd] }\n',
    );
    const steps = repairSteps(c, diagnosis(c, false));
    const update = steps.findIndex((s) => /through a healthy member/.test(s));
    const restart = steps.findIndex((s) => /restart etcd/.test(s));
    assert.ok(update > 0 && restart > update, steps.join('\n'));
  });

  it("this window runs on the member's host: its steps say here and no SSH tunnel to it", () => {
    const c = clusterOf(
      'version: 1\nclusters:\n  - name: c\n    hosts:\n      - { name: a, address: 10.0.0.1, roles: [etcd] }\n',
    );
    const remote = repairSteps(c, diagnosis(c, true));
    assert.ok(
      remote.some((s) => /over an SSH tunnel from a$/.test(s)),
      remote.join('\n'),
    );
    const steps = repairSteps(c, { ...diagnosis(c, true), local: true });
    assert.ok(!steps.some((s) => /SSH/.test(s)), steps.join('\n'));
    assert.ok(
      steps.some((s) =>
        /^on a \(here, as root through sudo in this window's terminal\): upload the certificates/.test(
          s,
        ),
      ),
      steps.join('\n'),
    );
    assert.ok(
      steps.some((s) => /through the member itself, here on a$/.test(s)),
      steps.join('\n'),
    );
  });

  it("K3s's embedded etcd: K3s's client certificate, nothing of K3s's rewritten, restart K3s last", () => {
    const c = clusterOf(
      'version: 1\nclusters:\n  - name: c\n    datastore: k3s-embedded-etcd\n    hosts:\n      - { name: a, address: 10.0.0.1, roles: [etcd, k3s-server] }\n',
    );
    const steps = repairSteps(c, diagnosis(c, true));
    assert.ok(
      steps.some((s) =>
        s.includes('/var/lib/rancher/k3s/server/tls/etcd/server-client.crt, kept in memory'),
      ),
    );
    assert.ok(!steps.some((s) => /re-issue|etcd\.env/.test(s)), steps.join('\n'));
    assert.match(steps.at(-1) ?? '', /restart K3s on a yourself \(sudo systemctl restart k3s\)/);
  });
});

describe('fix peer URL: the new address is input', () => {
  it('an address with a backtick or a line break is refused before any host is reached', async () => {
    const c = clusterOf(
      'version: 1\nclusters:\n  - name: c\n    hosts:\n      - { name: a, address: 10.0.0.1, roles: [etcd] }\n',
    );
    // No SSH context at all: the refusal comes first.
    const ssh = {} as SshContext;
    for (const bad of ['10.0.0.9`touch /tmp/x`', '10.0.0.9\nETCD_DATA_DIR=/', '$(id)']) {
      await assert.rejects(
        diagnosePeerUrl(c, 'a', { newAddress: bad, ssh }),
        /is not an IP address or host name: give the new address of a \(--address NEW_ADDRESS\)\. Nothing was changed\./,
        bad,
      );
      const d = {
        ...diagnosis(c, true),
        newAddress: bad,
        stale: [{ what: 'x', now: 'a', want: 'b' }],
      };
      await assert.rejects(
        fixPeerUrl(c, { ...d, steps: [] }, { ssh }),
        /is not an IP address or host name: nothing was changed/,
      );
    }
  });
});

describe('fix peer URL: what both front ends show', () => {
  it('words each stale item and numbers the steps once, for the CLI and the modal alike', () => {
    const d = {
      stale: [{ what: 'peer URL', now: 'https://10.0.0.1:2380', want: 'https://10.0.0.9:2380' }],
      steps: ['re-issue the certificates', 'member update'],
    } as unknown as PeerUrlDiagnosis;
    assert.deepEqual(repairPlanLines(d), {
      stale: ['peer URL: https://10.0.0.1:2380 → https://10.0.0.9:2380'],
      steps: ['1. re-issue the certificates', '2. member update'],
    });
  });
});
