/**
 * `monitoring export` without a server: the alert rules' thresholds, minimum observations and
 * `for:` read back from the rendered rules.yml and checked against what the Metrics tab's judge
 * does at those figures (so a change on either side alone fails here); the same words; the
 * Grafana dashboard's structure for its schema version with the Metrics tab's chart titles;
 * hostile names and paths; the files, their modes and the monitoring client certificate.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { judgeMember, type BreachRuns } from '../../src/core/metrics/judge';
import { DEFAULT_POLICY, RULES } from '../../src/core/metrics/rules';
import { COUNT, MS, rulesYaml, SEVERITY, type RuleGroups } from '../../src/core/monitoring/alerts';
import { GRAFANA_SCHEMA_VERSION, grafanaDashboard } from '../../src/core/monitoring/dashboard';
import {
  MONITORING_FORMATS,
  planMonitoringExport,
  writeMonitoringExport,
} from '../../src/core/monitoring/export';
import { kubectlSecretLine, kubeStackYaml } from '../../src/core/monitoring/kubeStack';
import { prometheusYaml } from '../../src/core/monitoring/prometheus';
import { scrapeSpec } from '../../src/core/monitoring/targets';
import { generateCertificateSet, ROTATION_STATE_FILE } from '../../src/core/pki/set';
import type { Cluster } from '../../src/core/inventory/types';
import type { Finding, MemberSummary, RuleId } from '../../src/shared/metricsTypes';
import { runCommand } from '../../scripts/harness/processes';
import { runCli } from '../fixtures/cli';
import { cluster, host } from '../fixtures/inventory';

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

const base: MemberSummary = {
  from: 0,
  to: 15 * 60_000,
  scrapes: 90,
  latencyBasis: 'window',
  walFsyncs: 1000,
  backendCommits: 1000,
  peerRoundTrips: 1000,
  leaderChanges: 0,
  proposalsFailed: 0,
  grpcErrors: 0,
  grpcRequests: 1000,
};
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
      /^database near its quota: .*: compact and defragment, or raise --quota-backend-bytes$/,
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

describe('hostile names and paths, files and the certificate', () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const temp = async () => {
    const d = await mkdtemp(join(tmpdir(), 'k3s-etcd-monitoring-'));
    dirs.push(d);
    return d;
  };
  const members = () => [host('m-1', '10.0.0.1'), host('m-2', '10.0.0.2'), host('m-3', '10.0.0.3')];

  it('refuses a name that is no label value, or a path with a line break', () => {
    for (const name of ['a"b', 'x\ny', "c'; rm -rf /", 'a b', '']) {
      const c: Cluster = { ...cluster('/p', members()), name };
      assert.throws(
        () => scrapeSpec(c),
        /cannot be a Prometheus label value.*Nothing was exported/,
      );
      assert.throws(() => rulesYaml(name), /cannot be a Prometheus label value/);
      assert.throws(() => grafanaDashboard(name), /cannot be a Prometheus label value/);
    }
    const m = host('m-1', '10.0.0.1', { memberName: 'm"1' });
    assert.throws(() => scrapeSpec(cluster('/p', [m])), /the member name "m\\"1"/);
    assert.throws(
      () => scrapeSpec(cluster('/p\n# injected: true', members())),
      /control character/,
    );
  });

  it('quotes a path with spaces and quotes: YAML reads it back, sh passes kubectl the exact arguments', async () => {
    const dir = '/tmp/o\'ne "two" $(x) `y`';
    const spec = scrapeSpec(cluster(dir, members()));
    const prom = parse(prometheusYaml(spec)) as {
      scrape_configs: Array<{ tls_config: Record<string, string>; static_configs: unknown[] }>;
    };
    assert.equal(
      prom.scrape_configs[0]!.tls_config['key_file'],
      `${dir}/client/monitoring-key.pem`,
    );
    assert.deepEqual(prom.scrape_configs[0]!.static_configs[1], {
      targets: ['10.0.0.2:2379'],
      labels: { cluster: 'edge-t', member: 'm-2' },
    });
    const values = parse(kubeStackYaml(spec)) as { kubeEtcd: { endpoints: string[] } };
    assert.deepEqual(values.kubeEtcd.endpoints, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    const r = await runCommand('sh', [
      '-c',
      `kubectl() { for a in "$@"; do printf '%s\\n' "$a"; done; }; ${kubectlSecretLine(spec)}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trimEnd().split('\n'), [
      'create',
      'secret',
      'generic',
      'k3s-etcd-monitoring',
      '--namespace',
      'monitoring',
      `--from-file=ca.pem=${dir}/ca.pem`,
      `--from-file=monitoring.pem=${dir}/client/monitoring.pem`,
      `--from-file=monitoring-key.pem=${dir}/client/monitoring-key.pem`,
    ]);
  });

  it('writes every format, keys by path only, and issues the monitoring client once', async () => {
    const ws = await temp();
    const c = cluster(join(ws, 'pki'), members());
    await generateCertificateSet(c);
    const out = join(ws, 'monitoring', 'edge-t');
    const plan = await planMonitoringExport(c, { dir: out });
    assert.equal(plan.certificate?.action, 'create');
    assert.deepEqual([...new Set(plan.files.map((f) => f.format))], [...MONITORING_FORMATS]);
    const r = await writeMonitoringExport(c, plan);
    assert.ok(r.written.includes(join(c.pki.dir, 'client/monitoring-key.pem')));
    const names = (await readdir(out)).sort();
    assert.deepEqual(names, [
      'grafana-dashboard.json',
      'kube-prometheus-stack-values.yaml',
      'kubectl-secret.sh',
      'prometheus.yml',
      'rules.yml',
    ]);
    const key = await readFile(join(c.pki.dir, 'client/monitoring-key.pem'), 'utf8');
    for (const n of names) {
      const text = await readFile(join(out, n), 'utf8');
      assert.doesNotMatch(text, /PRIVATE KEY|BEGIN CERTIFICATE/, n);
      assert.ok(!text.includes(key.split('\n')[1]!), n);
      const mode = (await stat(join(out, n))).mode & 0o777;
      assert.equal(mode, text.includes('monitoring-key.pem') ? 0o600 : 0o644, n);
    }
    const cert = new X509Certificate(await readFile(join(c.pki.dir, 'client/monitoring.pem')));
    assert.match(cert.subject, /CN=monitoring/);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'ClientAuth only');
    assert.ok(cert.checkIssued(new X509Certificate(await readFile(join(c.pki.dir, 'ca.pem')))));
    const index = JSON.parse(await readFile(join(c.pki.dir, 'index.json'), 'utf8')) as {
      entries: Array<{ path: string }>;
    };
    assert.ok(index.entries.some((e) => e.path === 'client/monitoring.pem'));
    // Again: the certificate is kept.
    const again = await planMonitoringExport(c, { dir: out, formats: ['rules'] });
    assert.equal(again.certificate?.action, 'keep');
    assert.deepEqual(
      again.files.map((f) => f.name),
      ['rules.yml'],
    );
  });

  it('refuses to issue during a CA rotation; the metrics listener needs no certificate', async () => {
    const ws = await temp();
    const c = cluster(join(ws, 'pki'), members());
    await generateCertificateSet(c);
    await writeFile(join(c.pki.dir, ROTATION_STATE_FILE), '{}');
    const plan = await planMonitoringExport(c, { dir: join(ws, 'out') });
    await assert.rejects(writeMonitoringExport(c, plan), /CA rotation of edge-t is under way/);
    await assert.rejects(stat(join(ws, 'out')), 'nothing written');

    const plain: Cluster = { ...c, etcd: { ...c.etcd, metricsPort: 2381 } };
    const p2 = await planMonitoringExport(plain, { dir: join(ws, 'plain') });
    assert.equal(p2.certificate, undefined);
    assert.equal(p2.spec.scheme, 'http');
    const prom = parse(p2.files.find((f) => f.name === 'prometheus.yml')!.content) as {
      scrape_configs: Array<Record<string, unknown>>;
    };
    assert.equal(prom.scrape_configs[0]!['tls_config'], undefined);
    assert.equal(prom.scrape_configs[0]!['scheme'], 'http');
    assert.ok(!p2.files.some((f) => f.name === 'kubectl-secret.sh'));
    const none = await temp();
    await assert.rejects(
      planMonitoringExport(cluster(none, members()), { dir: none }),
      /no CA .* to issue the monitoring client certificate/,
    );
  });
});

describe('k3s-etcd monitoring export', () => {
  let ws = '';
  after(() => rm(ws, { recursive: true, force: true }));
  const INVENTORY = [
    'version: 1',
    'clusters:',
    '  - name: edge-t',
    '    etcd: { version: v3.4.23 }',
    '    pki: { dir: pki }',
    '    hosts:',
    '      - { name: m-1, address: 10.0.0.1, roles: [etcd] }',
    '      - { name: m-2, address: 10.0.0.2, roles: [etcd] }',
    '      - { name: m-3, address: 10.0.0.3, roles: [etcd] }',
    '',
  ].join('\n');

  it('dry run, a wrong format, then every file in monitoring/<cluster> beside the inventory', async () => {
    ws = await mkdtemp(join(tmpdir(), 'k3s-etcd-monitoring-cli-'));
    await writeFile(join(ws, 'k3s-etcd.yaml'), INVENTORY);
    const help = await runCli(['monitoring', 'export', '--help'], { cwd: ws });
    assert.equal(help.code, 0);
    assert.match(
      help.out,
      /Usage: k3s-etcd monitoring export \[--format prometheus\|kube-prometheus-stack\|rules\|grafana\] \[--out DIR\]/,
    );
    assert.match(
      (await runCli(['--help'], { cwd: ws })).out,
      /monitoring export +Write Prometheus/,
    );

    const wrong = await runCli(['monitoring', 'export', '--format', 'grafna'], { cwd: ws });
    assert.equal(wrong.code, 2);
    assert.match(wrong.err, /--format grafna is not a format \(did you mean grafana\?\)/);

    const noCa = await runCli(['monitoring', 'export'], { cwd: ws });
    assert.equal(noCa.code, 1);
    assert.match(noCa.err, /no CA .*`k3s-etcd certs generate`/);

    assert.equal((await runCli(['certs', 'generate'], { cwd: ws })).code, 0);
    const dry = await runCli(['monitoring', 'export', '--dry-run'], { cwd: ws });
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /3 members scraped on the client port 2379 with mutual TLS/);
    assert.match(dry.out, /client\/monitoring\.pem \(CN monitoring, ClientAuth\) will be issued/);
    assert.match(dry.out, /Dry run: nothing was written\./);
    await assert.rejects(stat(join(ws, 'monitoring')));
    await assert.rejects(stat(join(ws, 'pki/client/monitoring.pem')));

    const done = await runCli(['monitoring', 'export', '--json'], { cwd: ws });
    assert.equal(done.code, 0, done.err);
    const j = JSON.parse(done.out) as {
      dir: string;
      written: string[];
      certificate: { action: string };
    };
    assert.equal(j.dir, join(ws, 'monitoring', 'edge-t'));
    assert.equal(j.certificate.action, 'create');
    assert.equal(j.written.length, 2 + 5);
    const only = await runCli(['monitoring', 'export', '--format', 'rules', '--out', 'elsewhere'], {
      cwd: ws,
    });
    assert.equal(only.code, 0, only.err);
    assert.match(only.out, /kept\./);
    assert.deepEqual(await readdir(join(ws, 'elsewhere')), ['rules.yml']);
  });
});
