import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  formatProblem,
  loadInventoryFile,
  parseInventory,
  summarize,
} from '../../src/core/inventory/parse';
import {
  dataDirProblem,
  dataDirSchemaPattern,
  SYSTEM_TREES,
} from '../../src/core/inventory/dataDir';
import schema from '../../schemas/k3s-etcd.schema.json';
import { isIpOrHostname } from '../../src/core/inventory/schema';
import { STARTER_INVENTORY } from '../../src/core/inventory/starter';
import { DEFAULT_ETCD_VERSION } from '../../src/core/etcdRelease/version';
import type { InventoryLoadResult, Problem } from '../../src/core/inventory/types';
import {
  clientEndpoints,
  clientUrl,
  metricsUrl,
  peerUrl,
  spareHosts,
} from '../../src/core/inventory/select';
import { envFile, type MemberPlanInput } from '../../src/core/provision/memberPlan';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');
const FILE = '/work/site/k3s-etcd.yaml';

function parse(text: string): InventoryLoadResult {
  return parseInventory(text, FILE);
}

function lines(result: InventoryLoadResult): string[] {
  return result.problems.map((p) => formatProblem(p));
}

function okInventory(result: InventoryLoadResult) {
  assert.equal(
    result.status,
    'ok',
    `expected a valid inventory, got:\n${lines(result).join('\n')}`,
  );
  if (result.status !== 'ok') throw new Error('unreachable');
  return result.inventory;
}

/** A valid one-cluster inventory with the given hosts block. */
function withHosts(hosts: string, clusterExtra = ''): string {
  return `version: 1\nclusters:\n  - name: edge-a\n${clusterExtra}    hosts:\n${hosts}`;
}

const THREE_HOSTS = `      - { name: edge-1, address: 10.10.3.104, roles: [etcd, k3s-server] }
      - { name: edge-2, address: 10.10.3.105, roles: [etcd] }
      - { name: edge-3, address: 10.10.3.106, roles: [etcd] }
`;

const h0sans = (c: { hosts: Array<{ sans: string[] }> }) => c.hosts[0]!.sans;

describe('inventory: the example and the starter', () => {
  it('parses the shipped example with the fixed keys and derived URLs', async () => {
    const result = await loadInventoryFile(EXAMPLE);
    const inv = okInventory(result);
    assert.deepEqual(result.problems, []);
    assert.equal(inv.clusters.length, 1);
    const c = inv.clusters[0]!;
    assert.equal(c.name, 'edge-a');
    assert.equal(c.datastore, 'external-etcd');
    assert.deepEqual(c.etcd, {
      version: 'v3.6.14',
      clientPort: 2379,
      peerPort: 2380,
      install: 'download',
      downloadUrl:
        'https://github.com/etcd-io/etcd/releases/download/{version}/etcd-{version}-linux-{arch}.tar.gz',
      dataDir: '/var/lib/etcd',
      initialClusterToken: 'k3s-etcd-edge-a',
      tuning: {},
    });
    assert.equal(c.pki.dir, join(__dirname, '../../examples/edge-lab/pki/edge-a'));
    assert.deepEqual(
      c.hosts.map((h) => [h.name, h.address, h.port, h.user, h.roles.join(',')]),
      [
        ['edge-1', '127.0.1.21', 22, 'root', 'etcd,k3s-server'],
        ['edge-2', '127.0.1.22', 22, 'root', 'etcd'],
        ['edge-3', '127.0.1.23', 22, 'root', 'etcd'],
      ],
    );
    assert.equal(c.hosts[0]!.identityFile, join(homedir(), '.ssh/id_ed25519'));
    assert.deepEqual(clientEndpoints(c), [
      'https://127.0.1.21:2379',
      'https://127.0.1.22:2379',
      'https://127.0.1.23:2379',
    ]);
    assert.equal(summarize(inv), '1 cluster, 3 hosts, 3 etcd members');
  });

  it('the starter file written by "Create Inventory" is itself valid and commented', () => {
    const inv = okInventory(parse(STARTER_INVENTORY));
    assert.equal(inv.clusters[0]!.hosts.length, 3);
    assert.match(STARTER_INVENTORY, /^# /m);
    assert.match(STARTER_INVENTORY, /Secrets never go in this file/);
    assert.equal(inv.clusters[0]!.etcd.version, DEFAULT_ETCD_VERSION, "the tool's default etcd");
  });

  it('applies defaults and resolves relative paths from the inventory folder', () => {
    const inv = okInventory(
      parse(
        withHosts(
          '      - { name: h1, address: etcd-1.lan, identityFile: keys/id, roles: [etcd] }\n',
          '    pki: { dir: ../shared-pki }\n',
        ),
      ),
    );
    const c = inv.clusters[0]!;
    assert.equal(c.datastore, 'external-etcd');
    assert.deepEqual(
      [c.etcd.version, c.etcd.clientPort, c.etcd.peerPort, c.etcd.install, c.etcd.dataDir],
      ['v3.6.14', 2379, 2380, 'download', '/var/lib/etcd'],
    );
    assert.equal(c.knownHostsFile, undefined);
    assert.equal(c.pki.dir, '/work/shared-pki');
    assert.equal(c.pki.algorithm, undefined, 'left to the setting');
    assert.equal(c.pki.caValidityDays, 3650);
    assert.equal(c.pki.leafValidityDays, 1825);
    assert.deepEqual(h0sans(c), []);
    const h = c.hosts[0]!;
    assert.equal(h.port, 22);
    assert.equal(h.user, 'root');
    assert.equal(h.memberName, 'h1');
    assert.equal(h.identityFile, '/work/site/keys/id');
    assert.equal(h.line, 6);
  });

  it('brackets IPv6 addresses in etcd URLs', () => {
    const inv = okInventory(
      parse(withHosts('      - { name: v6, address: "fd00::5", roles: [etcd] }\n')),
    );
    const c = inv.clusters[0]!;
    assert.equal(clientUrl(c, c.hosts[0]!), 'https://[fd00::5]:2379');
    assert.equal(peerUrl(c, c.hosts[0]!), 'https://[fd00::5]:2380');
  });

  it('spare hosts, where a replaced member may go, are those without the etcd role', () => {
    const inv = okInventory(
      parse(
        withHosts(
          [
            '      - { name: m1, address: 10.0.0.1, roles: [etcd, k3s-server] }',
            '      - { name: s1, address: 10.0.0.2, roles: [k3s-server] }',
            '      - { name: m2, address: 10.0.0.3, roles: [etcd] }',
            '      - { name: a1, address: 10.0.0.4, roles: [k3s-agent] }',
            '',
          ].join('\n'),
        ),
      ),
    );
    assert.deepEqual(
      spareHosts(inv.clusters[0]!).map((h) => h.name),
      ['s1', 'a1'],
    );
  });

  it('parses an inventory of 200 hosts', () => {
    const hosts = Array.from(
      { length: 200 },
      (_, i) =>
        `      - { name: h${i}, address: 10.1.${i >> 8}.${i & 255}, roles: [${i < 5 ? 'etcd, k3s-server' : 'k3s-agent'}] }\n`,
    ).join('');
    const inv = okInventory(parse(withHosts(hosts)));
    assert.equal(inv.clusters[0]!.hosts.length, 200);
    assert.equal(inv.clusters[0]!.hosts[199]!.line, 204);
  });
});

describe('inventory: every error path has a position and says what is expected', () => {
  it('missing file: says where it looked and how to create one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-unit-'));
    try {
      const result = await loadInventoryFile(join(dir, 'k3s-etcd.yaml'));
      assert.equal(result.status, 'missing');
      assert.match(
        result.problems[0]!.message,
        /k3s-etcd\.yaml not found in .*Create Inventory.*inventory init/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('empty file and comment-only file', () => {
    for (const text of ['', '# nothing yet\n', '\n\n']) {
      const result = parse(text);
      assert.equal(result.status, 'invalid');
      assert.deepEqual(lines(result), [
        'k3s-etcd.yaml:1:1 the file is empty: expected `version: 1` and a `clusters` list',
      ]);
    }
  });

  it('invalid YAML reports the syntax error position', () => {
    const result = parse('version: 1\nclusters:\n  - name: a\n\tbad: 1\n');
    assert.equal(result.status, 'invalid');
    assert.deepEqual(lines(result), [
      'k3s-etcd.yaml:4:1 invalid YAML: Tabs are not allowed as indentation',
    ]);
  });

  it('duplicate keys are a YAML error', () => {
    const result = parse('version: 1\nversion: 1\nclusters: []\n');
    assert.deepEqual(lines(result), ['k3s-etcd.yaml:2:1 invalid YAML: Map keys must be unique']);
  });

  it('a bad address: file, line, column, path and what is expected', () => {
    const text = withHosts(THREE_HOSTS.replace('10.10.3.106', '10.0.0.999'));
    assert.deepEqual(lines(parse(text)), [
      'k3s-etcd.yaml:7:34 clusters[0].hosts[2].address: "10.0.0.999" is not an IP address or hostname',
    ]);
  });

  it('schema violations, one clear message each', () => {
    const cases: Array<[string, string]> = [
      ['version: 2\nclusters: []\n', 'k3s-etcd.yaml:1:10 version: expected 1, got 2'],
      ['clusters: []\n', 'k3s-etcd.yaml:1:1 missing required key "version"'],
      [
        withHosts(THREE_HOSTS).replace('version: 1', 'version: 1\nowner: ops'),
        'k3s-etcd.yaml:2:1 owner: unknown key "owner" (expected one of: version, clusters)',
      ],
      [
        withHosts(
          THREE_HOSTS.replace(
            'roles: [etcd] }\n      - { name: edge-3',
            'roles: [etcd, db] }\n      - { name: edge-3',
          ),
        ),
        'k3s-etcd.yaml:6:61 clusters[0].hosts[1].roles[1]: "db" is not one of: etcd, k3s-server, k3s-agent',
      ],
      [
        withHosts(
          THREE_HOSTS.replace(
            'name: edge-3, address: 10.10.3.106,',
            'name: edge-3, address: 10.10.3.106, port: 70000,',
          ),
        ),
        'k3s-etcd.yaml:7:53 clusters[0].hosts[2].port: 70000 is out of range (at most 65535)',
      ],
      [
        withHosts(
          THREE_HOSTS.replace(
            'name: edge-3, address: 10.10.3.106,',
            'name: edge-3, address: 10.10.3.106, port: "22",',
          ),
        ),
        'k3s-etcd.yaml:7:53 clusters[0].hosts[2].port: expected a whole number, got "22"',
      ],
      [
        withHosts(
          THREE_HOSTS.replace(
            '{ name: edge-2, address: 10.10.3.105, roles: [etcd] }',
            '{ name: edge-2, roles: [etcd] }',
          ),
        ),
        'k3s-etcd.yaml:6:9 clusters[0].hosts[1]: missing required key "address"',
      ],
      [
        withHosts(THREE_HOSTS, '    datastore: sqlite\n'),
        'k3s-etcd.yaml:4:16 clusters[0].datastore: "sqlite" is not one of: external-etcd, k3s-embedded-etcd',
      ],
      [
        withHosts(THREE_HOSTS.replace('name: edge-1', 'name: "edge 1"')),
        "k3s-etcd.yaml:5:17 clusters[0].hosts[0].name: \"edge 1\" is not valid: Letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters.",
      ],
      ['version: 1\nclusters: []\n', 'k3s-etcd.yaml:2:11 clusters: needs at least 1 item'],
      ['- a\n- b\n', 'k3s-etcd.yaml:1:1 expected a mapping (key: value), got a list'],
    ];
    for (const [text, expected] of cases) {
      const result = parse(text);
      assert.equal(result.status, 'invalid', text);
      assert.ok(
        lines(result).includes(expected),
        `for:\n${text}\nexpected ${expected}\ngot:\n${lines(result).join('\n')}`,
      );
    }
  });

  it('duplicate cluster names, host names and address+port pairs', () => {
    const text = `version: 1
clusters:
  - name: a
    hosts:
      - { name: h1, address: 10.0.0.1, roles: [etcd] }
      - { name: h1, address: 10.0.0.2, roles: [etcd] }
      - { name: h3, address: 10.0.0.1, roles: [etcd] }
  - name: a
    hosts:
      - { name: x, address: 10.0.0.9, roles: [etcd] }
`;
    assert.deepEqual(lines(parse(text)), [
      'k3s-etcd.yaml:6:17 clusters[0].hosts[1].name: duplicate host name "h1" in cluster "a" (first at line 5)',
      'k3s-etcd.yaml:7:30 clusters[0].hosts[2].address: duplicate address and port 10.0.0.1:22 (also host "h1" at line 5)',
      'k3s-etcd.yaml:8:11 clusters[1].name: duplicate cluster name "a" (first at line 3)',
    ]);
  });

  it('the same address+port in two clusters is a warning, not an error', () => {
    const text = `version: 1
clusters:
  - name: a
    hosts: [{ name: h1, address: 10.0.0.1, roles: [etcd] }]
  - name: b
    hosts: [{ name: h1, address: 10.0.0.1, roles: [etcd] }]
`;
    const result = parse(text);
    assert.equal(result.status, 'ok');
    assert.deepEqual(lines(result), [
      'k3s-etcd.yaml:6:34 warning: clusters[1].hosts[0].address: duplicate address and port 10.0.0.1:22 (also host "h1" at line 4, cluster "a")',
    ]);
  });

  it('an even number of etcd members is a warning; none is an error', () => {
    const even = parse(withHosts(THREE_HOSTS.split('\n').slice(0, 2).join('\n') + '\n'));
    assert.equal(even.status, 'ok');
    assert.equal(even.problems.length, 1);
    assert.equal(even.problems[0]!.severity, 'warning');
    assert.match(
      even.problems[0]!.message,
      /has 2 etcd members: an even number tolerates no more failures than 1 \(quorum 2\); use an odd number/,
    );

    const none = parse(withHosts('      - { name: a1, address: 10.0.0.1, roles: [k3s-agent] }\n'));
    assert.equal(none.status, 'invalid');
    assert.match(
      lines(none)[0]!,
      /clusters\[0\]\.hosts: cluster "edge-a" has no host with the role etcd/,
    );
  });

  it('rules beyond the schema: same client and peer port, server and agent on one host', () => {
    const ports = parse(withHosts(THREE_HOSTS, '    etcd: { clientPort: 2379, peerPort: 2379 }\n'));
    assert.match(
      lines(ports).join('\n'),
      /clusters\[0\]\.etcd\.peerPort: peerPort must differ from clientPort \(both 2379\)/,
    );
    const metrics = parse(withHosts(THREE_HOSTS, '    etcd: { metricsPort: 2380 }\n'));
    assert.match(
      lines(metrics).join('\n'),
      /clusters\[0\]\.etcd\.metricsPort: metricsPort must differ from clientPort and peerPort \(2379, 2380\)/,
    );
    const listener = parse(withHosts(THREE_HOSTS, '    etcd: { metricsPort: 2381 }\n'));
    assert.equal(listener.status, 'ok');
    if (listener.status === 'ok') {
      const c = listener.inventory.clusters[0]!;
      assert.equal(c.etcd.metricsScheme, 'http');
      assert.equal(metricsUrl(c, c.hosts[0]!), `http://${c.hosts[0]!.address}:2381/metrics`);
      assert.match(
        envFile({
          cluster: c,
          host: c.hosts[0]!,
          facts: { hasData: false, initialLines: [] } as unknown as MemberPlanInput['facts'],
          binaries: { kind: 'installed', path: '/usr/bin/etcd' } as MemberPlanInput['binaries'],
          initialCluster: '',
          initialState: 'new',
        }),
        new RegExp(
          `^ETCD_LISTEN_METRICS_URLS=http://${c.hosts[0]!.address.replace(/\./g, '\\.')}:2381$`,
          'm',
        ),
      );
    }
    const both = parse(
      withHosts(
        THREE_HOSTS.replace('roles: [etcd, k3s-server]', 'roles: [etcd, k3s-server, k3s-agent]'),
      ),
    );
    assert.match(lines(both).join('\n'), /a host is either a K3s server or a K3s agent, not both/);
    const upload = parse(withHosts(THREE_HOSTS, '    etcd: { install: upload }\n'));
    assert.match(
      lines(upload).join('\n'),
      /clusters\[0\]\.etcd\.install: install: upload needs etcd\.uploadPath/,
    );
  });

  it('provisioning keys: install source, upload path, known_hosts file, SSH alias and jump hosts', () => {
    const result = parse(
      withHosts(
        THREE_HOSTS.replace(
          'roles: [etcd, k3s-server]',
          'roles: [etcd, k3s-server], sshHost: edge-1-ssh, proxyJump: "ops@bastion:2222"',
        ),
        '    etcd: { install: upload, uploadPath: dist/etcd, dataDir: /srv/etcd }\n    knownHostsFile: ssh/known_hosts\n',
      ),
    );
    const c = okInventory(result).clusters[0]!;
    assert.deepEqual(
      [c.etcd.install, c.etcd.uploadPath, c.etcd.dataDir, c.knownHostsFile],
      ['upload', '/work/site/dist/etcd', '/srv/etcd', '/work/site/ssh/known_hosts'],
    );
    assert.deepEqual(c.hosts[0]!.ssh, { alias: 'edge-1-ssh', proxyJump: 'ops@bastion:2222' });
    assert.deepEqual(c.hosts[1]!.ssh, {}, 'nothing spelled out: ~/.ssh/config decides');
  });

  it('problems carry 1-based start and end positions for diagnostics', () => {
    const result = parse(withHosts(THREE_HOSTS.replace('10.10.3.106', 'bad_host!')));
    const p: Problem = result.problems[0]!;
    assert.deepEqual([p.line, p.column, p.endLine, p.endColumn], [7, 34, 7, 43]);
    assert.equal(p.file, FILE);
  });

  it('reads the file from disk and keeps it byte for byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-unit-'));
    try {
      const file = join(dir, 'k3s-etcd.yaml');
      const text = withHosts(THREE_HOSTS.replace('10.10.3.106', '10.0.0.999'));
      await writeFile(file, text);
      const result = await loadInventoryFile(file);
      assert.equal(result.status, 'invalid');
      assert.equal(await readFile(file, 'utf8'), text, 'validation never rewrites the file');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('etcd.dataDir: never a system folder', () => {
  const refused = [
    '/',
    '/etc',
    '/etc/etcd',
    '/var',
    '/var/lib',
    '/var/lib/',
    '/var/lib/../etc',
    '/var/lib/etcd/..',
    '/var/lib/./etcd',
    '/var//lib/etcd',
    '/data',
    '/usr/local/etcd',
    '/tmp/etcd',
    '/run/etcd',
    '/var/log/etcd',
    '/home/alice',
    '/var/lib/rancher/k3s',
    '/var/lib/k3s-etcd',
    'var/lib/etcd',
    // root's home, hidden folders of a home folder, other programs' state
    '/root/.ssh',
    '/root/etcd',
    '/home/alice/.ssh',
    '/home/alice/.config/etcd',
    '/home/alice/work/.git',
    '/var/lib/dpkg',
    '/var/lib/apt/etcd',
    '/var/lib/systemd',
    '/var/lib/docker',
    '/var/lib/containerd/etcd',
    '/var/lib/kubelet',
    '/snap/x',
    '/var/snap/etcd',
    '/boot/etcd',
    '/proc/etcd',
    '/sys/etcd',
    '/dev/etcd',
  ];
  const accepted = [
    '/var/lib/etcd',
    '/srv/etcd',
    '/var/lib/etcd-lab',
    '/data/etcd',
    '/home/alice/etcd',
    '/var/lib/rancher2/etcd',
    '/opt/etcd/data',
    '/var/lib/.etcd',
    '/var/lib/dockerd/etcd',
    '/var/lib/systemd-etcd',
    '/home/alice/etcd/data',
    '/rootfs/etcd',
    '/snapshots/etcd',
  ];
  const withDataDir = (d: string) =>
    parse(withHosts(THREE_HOSTS, `    etcd: { dataDir: "${d}" }\n`));

  it('the schema refuses system folders, ".." segments and single segments, and the run-time rule agrees', () => {
    for (const d of refused) {
      assert.equal(withDataDir(d).status, 'invalid', d);
      assert.ok(dataDirProblem(d), d);
    }
    for (const d of accepted) {
      assert.equal(okInventory(withDataDir(d)).clusters[0]!.etcd.dataDir, d);
      assert.equal(dataDirProblem(d), undefined, d);
    }
  });

  it('the schema pattern is the run-time rule, and refuses every system tree and what is in it', () => {
    assert.equal(
      schema.definitions.cluster.properties.etcd.properties.dataDir.pattern,
      dataDirSchemaPattern(),
    );
    for (const tree of SYSTEM_TREES) {
      for (const d of [tree, `${tree}/etcd`]) {
        if (d.split('/').length < 3) continue; // single segments: refused by their own rule
        assert.equal(withDataDir(d).status, 'invalid', d);
        assert.ok(dataDirProblem(d), d);
      }
    }
  });

  it('says what is wrong and what to write', () => {
    assert.match(
      lines(withDataDir('/'))[0]!,
      /clusters\[0\]\.etcd\.dataDir: "\/" is not valid: etcd data directory on the hosts: an absolute path of at least two folders .* not a system folder/,
    );
    assert.equal(dataDirProblem('/var/lib'), 'holds the folders of other programs or users');
    assert.equal(
      dataDirProblem('/etc/etcd'),
      'is inside /etc, which belongs to the system or to another program',
    );
    assert.equal(
      dataDirProblem('/root/.ssh'),
      'is inside /root, which belongs to the system or to another program',
    );
    assert.match(dataDirProblem('/home/alice/.ssh')!, /hidden folder of a home folder/);
    assert.match(dataDirProblem('/var/lib/../etc')!, /"\.\." segment/);
    assert.match(dataDirProblem('/data')!, /root of the file system: .* such as \/var\/lib\/etcd/);
  });
});

describe('address format', () => {
  it('accepts IPv4, IPv6 and hostnames; rejects malformed ones', () => {
    for (const ok of ['10.10.3.104', '::1', 'fd00::5', 'edge-1', 'etcd-1.site.lan', 'localhost'])
      assert.ok(isIpOrHostname(ok), ok);
    for (const bad of ['10.0.0.999', '1.2.3', 'edge_1', '-edge', 'a..b', 'bad host', ''])
      assert.ok(!isIpOrHostname(bad), bad);
  });
});
