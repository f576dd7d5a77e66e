/**
 * Certificate expiry as a metric: the certificate a member served during a scrape, judged against
 * the warning window; an expiring or expired one marks the member (and so the tree's row and the
 * Metrics tab's findings), a distant one does not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterMetrics } from '../../src/core/metrics/scrape';
import { servedCertFinding } from '../../src/core/metrics/servedCert';
import { MetricsWindow } from '../../src/core/metrics/window';
import { marks } from '../../src/shared/metricsTypes';

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-07T00:00:00Z');
const at = (days: number) => new Date(NOW + days * DAY).toISOString();

describe('the served certificate as a metric', () => {
  it('is fine far from its end, a warning inside the window, broken once expired', () => {
    const far = servedCertFinding(at(400), NOW, 30);
    assert.equal(far.level, 'ok');
    assert.match(far.message, /valid until 2028-01-11 \(400 days\)/);
    const near = servedCertFinding(at(12.5), NOW, 30);
    assert.equal(near.level, 'warn');
    assert.match(near.message, /expiring in 12 days \(2026-12-19, warned 30 days ahead\)/);
    assert.match(near.message, /Renew Certificates…/);
    const minutes = servedCertFinding(new Date(NOW + 5 * 60_000).toISOString(), NOW, 30);
    assert.equal(minutes.level, 'warn');
    assert.match(minutes.message, /expiring in 5 min/);
    const gone = servedCertFinding(at(-1), NOW, 30);
    assert.equal(gone.level, 'bad');
    assert.match(gone.message, /expired 2026-12-06: clients refuse it/);
  });

  it('follows the warning window setting', () => {
    assert.equal(servedCertFinding(at(45), NOW, 30).level, 'ok');
    assert.equal(servedCertFinding(at(45), NOW, 60).level, 'warn');
    assert.equal(servedCertFinding(at(45), NOW, 0).level, 'ok');
  });

  it("marks the member that served it in the cluster's judgement, and only that one", () => {
    const targets = ['etcd-1', 'etcd-2'].map((m) => ({
      member: m,
      endpoint: `https://127.0.0.1:2379`,
      url: `https://127.0.0.1:2379/metrics`,
    }));
    const served = new Map([
      ['etcd-1', at(3)],
      ['etcd-2', at(3650)],
    ]);
    const m = clusterMetrics(
      'c',
      targets,
      new MetricsWindow(),
      { at: NOW, errors: new Map(), served },
      undefined,
      30,
    );
    const [one, two] = m.members;
    assert.equal(one?.level, 'warn');
    assert.ok(one?.findings.some((f) => f.rule === 'served-cert' && marks(f.level)));
    assert.equal(two?.level, 'ok');
    assert.equal(m.level, 'warn');
    // Over plain HTTP (etcd.metricsPort) nothing is served: no figure, no finding.
    const plain = clusterMetrics('c', targets, new MetricsWindow(), { at: NOW, errors: new Map() });
    assert.ok(plain.members.every((x) => !x.findings.some((f) => f.rule === 'served-cert')));
  });
});
