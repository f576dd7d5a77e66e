/**
 * `monitoring export`'s rules and dashboard without a server: the alert rules' thresholds,
 * minimum observations and `for:` read back from the rendered rules.yml and checked against what
 * the Metrics tab's judge does at those figures (so a change on either side alone fails here);
 * the same words; the Grafana dashboard's structure for its schema version with the Metrics
 * tab's chart titles. Names, paths, files and the certificate: monitoringFiles.test.ts.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { judgeMember, type BreachRuns } from '../../src/core/metrics/judge';
import { DEFAULT_POLICY, RULES } from '../../src/core/metrics/rules';
import { COUNT, MS, rulesYaml, SEVERITY, type RuleGroups } from '../../src/core/monitoring/alerts';
import { GRAFANA_SCHEMA_VERSION, grafanaDashboard } from '../../src/core/monitoring/dashboard';
import type { Finding, MemberSummary, RuleId } from '../../src/shared/metricsTypes';
import { JUDGED_SUMMARY } from '../fixtures/memberSummary';

const root = join(__dirname, '..', '..');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const rules = (parse(rulesYaml('edge-t')) as RuleGroups).groups[0]!.rules as Rule[];
const byRule = (id: string, severity?: string) =>
  rules.filter(
    (r) => r.labels['k3s_etcd_rule'] === id && (!severity || r.labels['severity'] === severity),
  );
const one = (id: string, severity?: string) => {
  const r = byRule(id, severity);
  assert.equal(r.length, 1, `${id} ${severity ?? ''}: one alert rule`);
  return r[0]!;
};
/** The number after `op` in an expression (the first one). */
const after_ = (expr: string, op: string): number => {
  const m = new RegExp(`\\s${op.replace(/[<>=]/g, (c) => c)}\\s+([0-9.e+-]+)`).exec(expr);
  assert.ok(m, `"${op} N" in ${expr}`);
  return Number(m[1]);
};
const forMs = (r: Rule): number => {
  const m = /^(\d+)(s|m|h)$/.exec(r.for ?? '');
  assert.ok(m, `${r.alert}: for ${r.for}`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
};
/** The minimum observations an expression asks for (`... >= N)` at its end). */
const minObs = (r: Rule) => {
  const m = /\[15m\]\)\) >= (\d+)\)$/.exec(r.expr);
  assert.ok(m, `${r.alert}: minimum observations in ${r.expr}`);
  return Number(m[1]);
};

const base: MemberSummary = JUDGED_SUMMARY;
const runs = (ms: number, evaluations: number): BreachRuns =>
  Object.fromEntries(
    [
      'wal-fsync',
      'backend-commit',
      'peer-rtt',
      'grpc-errors',
      'has-leader',
      'proposals-pending',
    ].map((r) => [r, { ms, evaluations }]),
  );
const LASTING = runs(15 * 60_000, 90);
const judged = (
  rule: RuleId,
  s: Partial<MemberSummary>,
  r: BreachRuns = LASTING,
): Finding | undefined => judgeMember({ ...base, ...s }, r).find((f) => f.rule === rule);
const level = (rule: RuleId, s: Partial<MemberSummary>, r?: BreachRuns) =>
  judged(rule, s, r)?.level ?? 'none';

describe('rules.yml says what the Metrics tab judges', () => {
  it('every rule of the tab, and member-down, is an alert; warn is warning, bad critical', () => {
    const ids = new Set(rules.map((r) => r.labels['k3s_etcd_rule']));
    assert.deepEqual([...ids].sort(), RULES.map((r) => r.id).sort());
    for (const r of rules)
      assert.ok(Object.values(SEVERITY).includes(r.labels['severity'] as never), r.alert);
    assert.equal(
      rules.length,
      RULES.reduce((n, r) => n + r.levels.length, 0),
    );
  });

  it('disk latencies: the threshold, the minimum observations and for: where the judge breaks them', () => {
    for (const [rule, key, countKey] of [
      ['wal-fsync', 'walFsyncP99Ms', 'walFsyncs'],
      ['backend-commit', 'backendCommitP99Ms', 'backendCommits'],
    ] as const) {
      const r = one(rule, 'critical');
      const limit = after_(r.expr, '>');
      const n = minObs(r);
      assert.equal(level(rule, { [key]: limit }), 'ok', `${rule} at ${limit} ms`);
      assert.equal(level(rule, { [key]: limit + 0.1 }), 'bad', `${rule} over ${limit} ms`);
      assert.equal(level(rule, { [key]: limit + 5, [countKey]: n - 1 }), 'unjudged');
      assert.equal(level(rule, { [key]: limit + 5, [countKey]: n }), 'bad');
      const wait = forMs(r);
      const ev = DEFAULT_POLICY.minEvaluations;
      assert.equal(level(rule, { [key]: limit + 5 }, runs(wait - 1, 99)), 'unjudged');
      assert.equal(level(rule, { [key]: limit + 5 }, runs(wait, ev)), 'bad');
      assert.equal(level(rule, { [key]: limit + 5 }, runs(wait * 10, ev - 1)), 'unjudged');
    }
  });

  it("peer round trip and gRPC failures: warning, then critical, at the judge's levels", () => {
    const warn = one('peer-rtt', 'warning');
    const bad = one('peer-rtt', 'critical');
    const w = after_(warn.expr, '>');
    const b = after_(bad.expr, '>');
    assert.equal(after_(warn.expr, '<='), b, 'the warning stops where critical starts');
    assert.equal(level('peer-rtt', { peerRttP99Ms: w }), 'ok');
    assert.equal(level('peer-rtt', { peerRttP99Ms: w + 0.1 }), 'warn');
    assert.equal(level('peer-rtt', { peerRttP99Ms: b }), 'warn');
    assert.equal(level('peer-rtt', { peerRttP99Ms: b + 0.1 }), 'bad');
    assert.equal(
      level('peer-rtt', { peerRttP99Ms: b + 1, peerRoundTrips: minObs(bad) - 1 }),
      'unjudged',
    );
    assert.equal(forMs(bad), forMs(one('wal-fsync')));

    const gw = one('grpc-errors', 'warning');
    const gb = one('grpc-errors', 'critical');
    const rw = after_(gw.expr, '>');
    const rb = after_(gb.expr, '>');
    const req = 10_000;
    assert.equal(level('grpc-errors', { grpcRequests: req, grpcErrors: rw * req }), 'ok');
    assert.equal(level('grpc-errors', { grpcRequests: req, grpcErrors: rw * req + 1 }), 'warn');
    assert.equal(level('grpc-errors', { grpcRequests: req, grpcErrors: rb * req }), 'warn');
    assert.equal(level('grpc-errors', { grpcRequests: req, grpcErrors: rb * req + 1 }), 'bad');
    const n = minObs(gb);
    assert.equal(level('grpc-errors', { grpcRequests: n - 1, grpcErrors: n - 1 }), 'unjudged');
    assert.equal(level('grpc-errors', { grpcRequests: n, grpcErrors: n }), 'bad');
    assert.match(
      gw.expr,
      /grpc_code=~"Unknown\|FailedPrecondition\|ResourceExhausted\|Internal\|Unavailable\|DataLoss\|DeadlineExceeded"/,
    );
  });

  it('leader: none for as long as the tab waits; changes counted over its window', () => {
    const r = one('has-leader');
    assert.match(r.expr, /etcd_server_has_leader\{cluster="edge-t"\}\) < 1$/);
    assert.equal(level('has-leader', { hasLeader: false }, runs(forMs(r), 3)), 'bad');
    assert.equal(level('has-leader', { hasLeader: false }, runs(forMs(r) - 1, 3)), 'unjudged');
    const warn = one('leader-changes', 'warning');
    const bad = one('leader-changes', 'critical');
    assert.equal(warn.for, undefined, 'a counted event needs no for:');
    const w = after_(warn.expr, '>=');
    const b = after_(bad.expr, '>=');
    assert.equal(after_(warn.expr, '<'), b);
    assert.match(bad.expr, /\[15m\]/);
    assert.equal(base.to - base.from, 15 * 60_000, "the judge's window is the rules' 15m");
    assert.equal(level('leader-changes', { leaderChanges: w - 1 }), 'ok');
    assert.equal(level('leader-changes', { leaderChanges: w }), 'warn');
    assert.equal(level('leader-changes', { leaderChanges: b - 1 }), 'warn');
    assert.equal(level('leader-changes', { leaderChanges: b }), 'bad');
    const failed = one('proposals-failed');
    assert.equal(after_(failed.expr, '>'), 0);
    assert.equal(level('proposals-failed', { proposalsFailed: 1 }), 'warn');
    assert.equal(level('proposals-failed', { proposalsFailed: 0 }), 'none');
    const pending = one('proposals-pending');
    const p = after_(pending.expr, '>');
    assert.equal(level('proposals-pending', { proposalsPending: p }), 'none');
    assert.equal(level('proposals-pending', { proposalsPending: p + 1 }), 'warn');
    assert.equal(
      level('proposals-pending', { proposalsPending: p + 1 }, runs(forMs(pending) - 1, 9)),
      'unjudged',
    );
  });

  it('database: near its quota and fragmented at the same shares and size', () => {
    const warn = one('db-quota', 'warning');
    const bad = one('db-quota', 'critical');
    const w = after_(warn.expr, '>=');
    const b = after_(bad.expr, '>=');
    const q = 1_000_000;
    assert.equal(level('db-quota', { dbTotalBytes: w * q - 1, quotaBytes: q }), 'ok');
    assert.equal(level('db-quota', { dbTotalBytes: w * q, quotaBytes: q }), 'warn');
    assert.equal(level('db-quota', { dbTotalBytes: b * q - 1, quotaBytes: q }), 'warn');
    assert.equal(level('db-quota', { dbTotalBytes: b * q, quotaBytes: q }), 'bad');
    assert.equal(bad.for, undefined, 'a size needs no for:');
    const frag = one('db-fragmented');
    const share = after_(frag.expr, '<');
    const size = after_(frag.expr, '>=');
    const at = (total: number, inUse: number) =>
      level('db-fragmented', { dbTotalBytes: total, dbInUseBytes: inUse });
    assert.equal(at(size, size * share - 1), 'warn');
    assert.equal(at(size, size * share), 'none');
    assert.equal(at(size - 1, 0), 'none');
  });

  it("member down: up < 1 for the policy's sustained breach", () => {
    const r = one('member-down', 'critical');
    assert.equal(r.expr, 'max by (cluster, member) (up{cluster="edge-t"}) < 1');
    assert.equal(forMs(r), DEFAULT_POLICY.sustainMs);
  });

  it("the alerts' words are the judge's, with the figures as templates", () => {
    const wal = one('wal-fsync');
    assert.equal(
      wal.annotations['summary']!.replace(MS, '38 ms'),
      judged('wal-fsync', { walFsyncP99Ms: 38 })!.message,
    );
    assert.equal(
      one('has-leader').annotations['summary'],
      judged('has-leader', { hasLeader: false })!.message,
    );
    assert.equal(
      one('leader-changes', 'critical').annotations['summary']!.replace(
        `${COUNT} time(s)`,
        '4 times',
      ),
      judged('leader-changes', { leaderChanges: 4 })!.message,
    );
    assert.equal(
      one('peer-rtt', 'critical').annotations['summary']!.replace(MS, '120 ms'),
      judged('peer-rtt', { peerRttP99Ms: 120 })!.message,
    );
    assert.match(
      one('db-quota', 'critical').annotations['summary']!,
      /^database near its quota: .*: compact and defragment, or raise etcd\.quotaBackendBytes in k3s-etcd\.yaml and apply it with provision$/,
    );
    for (const r of rules) {
      assert.ok((r.annotations['runbook'] ?? '').length > 40, `${r.alert}: runbook`);
      assert.match(
        r.annotations['description']!,
        /^etcd member \{\{ \$labels\.member \}\} of cluster \{\{ \$labels\.cluster \}\}: /,
      );
    }
  });
});

describe('the Grafana dashboard', () => {
  const d = grafanaDashboard('edge-t') as {
    schemaVersion: number;
    uid: string;
    title: string;
    templating: { list: Array<{ name: string; type: string; query: string }> };
    panels: Array<{
      id: number;
      type: string;
      title: string;
      datasource: { type: string; uid: string };
      gridPos: { h: number; w: number; x: number; y: number };
      fieldConfig: {
        defaults: { unit: string; thresholds: { steps: Array<{ value: number | null }> } };
      };
      targets: Array<{ refId: string; expr: string; datasource: { uid: string } }>;
    }>;
  };

  it('is a dashboard of its schema version: panels with ids, grid positions, data source, targets', () => {
    assert.equal(d.schemaVersion, GRAFANA_SCHEMA_VERSION);
    assert.equal(GRAFANA_SCHEMA_VERSION, 39);
    assert.ok(d.uid.length > 0 && d.uid.length <= 40 && /^[A-Za-z0-9_-]+$/.test(d.uid));
    assert.ok(d.title.length > 0);
    const ds = d.templating.list.find((v) => v.name === 'datasource');
    assert.deepEqual([ds?.type, ds?.query], ['datasource', 'prometheus']);
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
    const cells = new Set<string>();
    for (const p of d.panels) {
      assert.ok(Number.isInteger(p.id) && p.id > 0);
      assert.ok(['stat', 'timeseries'].includes(p.type), p.type);
      const g = p.gridPos;
      for (const v of [g.h, g.w, g.x, g.y]) assert.ok(Number.isInteger(v) && v >= 0, p.title);
      assert.ok(g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${p.title}: inside the 24 columns`);
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel`);
          cells.add(`${x},${y}`);
        }
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' });
      assert.ok(p.targets.length > 0, p.title);
      const refs = p.targets.map((t) => t.refId);
      assert.equal(new Set(refs).size, refs.length);
      for (const t of p.targets) {
        assert.match(t.expr, /\{cluster="edge-t"/);
        assert.equal(t.datasource.uid, '${datasource}');
      }
      const steps = p.fieldConfig.defaults.thresholds.steps;
      assert.equal(steps[0]!.value, null, 'the base step has no value');
    }
  });

  it("has the Metrics tab's charts, by title, with the rules' thresholds", async () => {
    const tab = await readFile(join(root, 'webview/src/metrics.ts'), 'utf8');
    const charts = tab.slice(tab.indexOf('function chartSpecs'));
    const titles = [...charts.slice(0, charts.indexOf('\n}\n')).matchAll(/title: '([^']+)'/g)].map(
      (m) => m[1],
    );
    assert.ok(titles.length >= 8, titles.join(', '));
    for (const t of titles)
      assert.ok(
        d.panels.some((p) => p.title === t),
        `the tab's chart "${t}" is on the dashboard`,
      );
    const wal = d.panels.find((p) => p.title === 'WAL fsync p99')!;
    assert.deepEqual(
      wal.fieldConfig.defaults.thresholds.steps.map((s) => s.value),
      [null, after_(one('wal-fsync').expr, '>')],
    );
    assert.equal(wal.targets[0]!.expr, one('wal-fsync').expr.match(/^\((.*) > \d+\) and/)![1]);
  });
});
