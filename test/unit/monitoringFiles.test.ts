/**
 * `monitoring export`'s files without a server: hostile names and paths refused or quoted (YAML
 * reads them back, sh passes kubectl the exact arguments), every format written with its mode
 * and no key inside, the monitoring client certificate issued once and refused during a CA
 * rotation, the metrics listener without one, and the CLI command.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { rulesYaml } from '../../src/core/monitoring/alerts';
import { grafanaDashboard } from '../../src/core/monitoring/dashboard';
import {
  MONITORING_FORMATS,
  monitoringPlanText,
  planMonitoringExport,
  writeMonitoringExport,
} from '../../src/core/monitoring/export';
import { kubectlSecretLine, kubeStackYaml } from '../../src/core/monitoring/kubeStack';
import { prometheusYaml } from '../../src/core/monitoring/prometheus';
import { scrapeSpec } from '../../src/core/monitoring/targets';
import { generateCertificateSet, ROTATION_STATE_FILE } from '../../src/core/pki/set';
import type { Cluster } from '../../src/core/inventory/types';
import { runCommand } from '../../scripts/harness/processes';
import { runCli } from '../fixtures/cli';
import { cluster, host } from '../fixtures/inventory';

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
    assert.doesNotMatch(monitoringPlanText(p2), /not read-only|Client certificate/);
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
    // Said plainly: the certificate can write (etcd runs without auth); the listener is the way.
    assert.match(
      dry.out,
      /will be issued by the cluster's CA\.\nIt is not read-only: etcd here runs without authentication .*can also write and delete every key.*prefer etcd\.metricsPort in k3s-etcd\.yaml \(with the default metricsScheme http\): a plain \/metrics listener on each member that needs no client certificate/,
    );
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
