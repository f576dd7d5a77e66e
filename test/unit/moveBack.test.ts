/**
 * K3s back to SQLite, the pure parts: config.yaml without the datastore keys (every other line
 * kept byte for byte, hostile layouts refused, the token never in the words), the choice of the
 * server that keeps running, the plan's words and the scripts the hosts would run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseInventory } from '../../src/core/inventory/parse';
import type { Cluster, Host } from '../../src/core/inventory/types';
import { renderK3sConfig, type K3sFacts } from '../../src/core/k3s/server';
import { DATASTORE_KEYS, sqliteConfig } from '../../src/core/k3s/sqliteConfig';
import { backOnEtcdPlan, sqliteServerPlan, stopK3sPlan } from '../../src/core/k3s/sqliteRepoint';
import {
  chooseServer,
  type MoveBackPreview,
  type MoveBackResult,
} from '../../src/core/moveBack/run';
import {
  moveBackConfirmDetail,
  moveBackOutcome,
  moveBackPlanLines,
  moveBackPlanMarkdown,
} from '../../src/core/moveBack/words';
import { renderScript } from '../../src/core/plan/render';
import { COMMANDS } from '../../src/shared/commands';
import { WORKS_UNTRUSTED } from '../../src/editor/untrustedCommands';

const TOKEN = 'K10abc::server:s3cr3t-token';

function clusterOf(hosts: string): Cluster {
  const r = parseInventory(
    `version: 1\nclusters:\n  - name: c\n    hosts:\n${hosts}`,
    '/ws/k3s-etcd.yaml',
  );
  assert.equal(r.status, 'ok', JSON.stringify(r.status === 'ok' ? [] : r.problems));
  return (r as { inventory: { clusters: Cluster[] } }).inventory.clusters[0] as Cluster;
}

const two = clusterOf(
  '      - { name: a, address: 10.0.0.1, roles: [etcd, k3s-server] }\n      - { name: b, address: 10.0.0.2, roles: [etcd, k3s-server] }\n      - { name: e, address: 10.0.0.3, roles: [etcd] }\n',
);

describe('config.yaml without the datastore keys', () => {
  it("k3s-etcd's own config: the four keys go, token and options stay byte for byte", () => {
    const c = clusterOf(
      '      - { name: a, address: 10.0.0.1, roles: [etcd, k3s-server] }\n      - { name: b, address: 10.0.0.2, roles: [etcd] }\n',
    );
    c.k3s.disable = ['traefik'];
    c.k3s.tlsSan = ['api.example'];
    const before = renderK3sConfig(c, TOKEN);
    const r = sqliteConfig('a', before);
    assert.deepEqual(r.removed, [...DATASTORE_KEYS]);
    assert.deepEqual(r.kept, ['token', 'disable', 'tls-san']);
    const kept = before.split('\n').filter((l) => !/^datastore-/.test(l));
    assert.equal(r.text, kept.join('\n'), 'every other line, comments too, byte for byte');
    assert.deepEqual(parse(r.text), {
      token: TOKEN,
      disable: ['traefik'],
      'tls-san': ['api.example'],
    });
  });

  it('multi-line values, quoted keys, comments, CRLF and odd spacing', () => {
    const before = [
      '# hand-written',
      "token: 'x: y'",
      '"datastore-endpoint":',
      '  - https://10.0.0.1:2379',
      '',
      '  - https://10.0.0.2:2379',
      'node-label:',
      '- "a=b"',
      "'datastore-cafile' :   /etc/ca.pem",
      'datastore-certfile: >-',
      '  /etc/',
      '  client.pem',
      'datastore-keyfile: /etc/key.pem\r',
      'kubelet-arg:   # trailing comment',
      '  - "max-pods=200"',
      'datastore-endpointx: kept (another key)',
      '',
    ].join('\n');
    const r = sqliteConfig('a', before);
    assert.deepEqual(r.removed, [
      'datastore-endpoint',
      'datastore-cafile',
      'datastore-certfile',
      'datastore-keyfile',
    ]);
    assert.equal(
      r.text,
      [
        '# hand-written',
        "token: 'x: y'",
        'node-label:',
        '- "a=b"',
        'kubelet-arg:   # trailing comment',
        '  - "max-pods=200"',
        'datastore-endpointx: kept (another key)',
        '',
      ].join('\n'),
    );
  });

  it('refuses layouts a line edit cannot prove, and never puts a value into its words', () => {
    const cases: [string, RegExp][] = [
      [`{token: ${TOKEN}, datastore-endpoint: https://x:2379}\n`, /still names datastore-endpoint/],
      [
        `token: ${TOKEN}\ndatastore-endpoint: &ep https://x:2379\ntls-san: *ep\n`,
        /without the datastore keys has aliases that do not resolve/,
      ],
      [`token: ${TOKEN}\ntoken: other\ndatastore-endpoint: x\n`, /not valid YAML/],
      [`- ${TOKEN}\n- datastore-endpoint\n`, /not a mapping/],
      [`token: ${TOKEN}\n---\ndatastore-endpoint: x\n`, /not valid YAML/],
      [
        `token: ${TOKEN}\ndisable: traefik\n`,
        /names no datastore-endpoint: this K3s server does not run on the external etcd/,
      ],
      [
        `token: ${TOKEN}\ndatastore-cafile: /ca.pem\n`,
        /names datastore-cafile but no datastore-endpoint/,
      ],
      [`token: ${TOKEN}\0\ndatastore-endpoint: x\n`, /holds a NUL byte/],
    ];
    for (const [text, why] of cases) {
      assert.throws(
        () => sqliteConfig('a', text),
        (err: Error) => {
          assert.match(err.message, why, text);
          assert.doesNotMatch(err.message, /s3cr3t/, 'the token is never in the words');
          assert.match(err.message, /^a: /);
          return true;
        },
      );
    }
  });
});

describe('the server that keeps running', () => {
  it('several servers and none named: refused, listing them; a name that is not a server: refused', () => {
    assert.throws(
      () => chooseServer(two),
      /Cluster c has 2 K3s servers \(a, b\) and K3s on SQLite runs one: name the one that keeps running \(--server NAME\)/,
    );
    assert.throws(
      () => chooseServer(two, 'e'),
      /e is not a K3s server of cluster c \(its K3s servers: a, b\)/,
    );
    const r = chooseServer(two, 'b');
    assert.equal(r.chosen.name, 'b');
    assert.deepEqual(
      r.others.map((h) => h.name),
      ['a'],
    );
  });
  it('the only server by default', () => {
    const one = clusterOf('      - { name: a, address: 10.0.0.1, roles: [etcd, k3s-server] }\n');
    assert.equal(chooseServer(one).chosen.name, 'a');
  });
});

const preview: MoveBackPreview = {
  cluster: 'c',
  chosen: 'a',
  chosenAddress: '10.0.0.1',
  node: 'node-a',
  others: ['b'],
  notInstalled: [],
  running: ['a', 'b'],
  removedKeys: [...DATASTORE_KEYS],
  keptKeys: ['token', 'disable'],
  aside: [
    {
      from: '/var/lib/rancher/k3s/server/db/state.db',
      to: '/var/lib/rancher/k3s/server/db/state.db.old-20260101T120000Z',
    },
  ],
  stateDb: '/var/lib/rancher/k3s/server/db/state.db',
  target: '/ws/migrations/20260101T120000Z/state.db',
  etcd: { revision: '42', keys: 10, totalBytes: 1000, leasedKeys: 2, token: 'decrypts' },
};

describe('the words of the move', () => {
  it('the plan says which servers stop, which one keeps running, the keys removed and the moved-aside names', () => {
    const text = moveBackPlanLines(preview).join('\n');
    assert.match(
      text,
      /a keeps running\. b is stopped and disabled \(systemctl disable --now k3s\) and must rejoin as an agent of a, or be reinstalled: it does not come back as a server/,
    );
    assert.match(
      text,
      /1\. K3s stopped on every server, one at a time, before etcd is read.*: b \(stopped and disabled\), a \(stopped until its state\.db is in place\)/,
    );
    assert.match(
      text,
      /state\.db → \/var\/lib\/rancher\/k3s\/server\/db\/state\.db\.old-20260101T120000Z/,
    );
    assert.match(
      text,
      /rewritten without datastore-endpoint, datastore-cafile, datastore-certfile, datastore-keyfile; every other key kept byte for byte \(token, disable\)/,
    );
    assert.match(text, /node node-a is Ready/);
    assert.match(moveBackConfirmDetail(preview), /b will be stopped and disabled/);
  });

  it('Markdown escapes names from the host', () => {
    const md = moveBackPlanMarkdown({ ...preview, keptKeys: ['<img src=x>', 'a|b'] }, 'now');
    assert.doesNotMatch(md, /<img/);
    assert.match(md, /&lt;img src=x&gt;/);
    assert.match(md, /^1\. K3s stopped/m);
  });

  it('a failed re-point that was put back names the stopped servers and how to start them', () => {
    const r: MoveBackResult = {
      ok: false,
      preview,
      stopRuns: [],
      stopped: [
        { host: 'b', disabled: true },
        { host: 'a', disabled: false },
      ],
      failedAt: 'repoint',
      error: 'a, step 8 "node node-a is Ready on SQLite": failed',
      rollback: { host: 'a', status: 'changed', steps: [], timings: {} },
    };
    const text = moveBackOutcome(r).join('\n');
    assert.match(text, /Moving a to SQLite failed: a, step 8/);
    assert.match(text, /a is back on etcd: its old \/etc\/rancher\/k3s\/config\.yaml restored/);
    assert.match(
      text,
      /still on etcd and unchanged: b\. To start them again: b: sudo systemctl enable --now k3s\./,
    );
    const { rollback: _back, ...before } = r;
    const migrate = moveBackOutcome({ ...before, failedAt: 'migrate', error: 'boom' });
    assert.match(
      migrate.join('\n'),
      /b: sudo systemctl enable --now k3s; a: sudo systemctl start k3s/,
    );
  });
});

describe('the host plans', () => {
  const host = two.hosts[0] as Host;
  const facts: K3sFacts = {
    installed: true,
    active: true,
    clusterInit: false,
    embeddedEtcd: false,
    hostname: 'node-a',
    curl: true,
    sqlite3: false,
  };
  it('the kept server: moved aside by name, the upload checked by SHA-256, config, start, Ready', () => {
    const sha = 'a'.repeat(64);
    const plan = sqliteServerPlan({
      host,
      facts,
      config: Buffer.from(`token: ${JSON.stringify(TOKEN)}\n`),
      stateDb: { localPath: '/ws/state.db', sha256: sha, bytes: 4096 },
      stamp: '20260101T120000Z',
      readySeconds: 30,
    });
    assert.deepEqual(
      plan.steps.map((s) => s.id),
      ['systemd', 'stopped', 'space', 'state', 'config', 'reset', 'service', 'ready'],
    );
    assert.deepEqual(
      plan.payloads.map((p) => [p.name, p.step]),
      [
        ['state.db', 'state'],
        ['config.yaml', 'config'],
      ],
    );
    const script = renderScript(plan);
    assert.match(
      script,
      /rename_over \/var\/lib\/rancher\/k3s\/server\/db\/state\.db-wal \/var\/lib\/rancher\/k3s\/server\/db\/state\.db-wal\.old-20260101T120000Z/,
    );
    assert.match(
      script,
      new RegExp(
        `sha256sum /var/lib/rancher/k3s/server/db/state.db \\| cut -d' ' -f1\\)" = ${sha}`,
      ),
    );
    assert.doesNotMatch(script, /s3cr3t/, 'config.yaml is a payload, never in the script');
    assert.match(script, /node-a/);
  });
  it('stops, and the way back on etcd', () => {
    assert.match(renderScript(stopK3sPlan(host, { disable: true })), /systemctl disable --now k3s/);
    assert.doesNotMatch(renderScript(stopK3sPlan(host, { disable: false })), /disable --now/);
    const back = backOnEtcdPlan(host, facts, Buffer.from('token: t\ndatastore-endpoint: x\n'), 30);
    assert.deepEqual(
      back.steps.map((s) => s.id),
      ['config', 'service', 'ready'],
    );
  });
});

describe('"Move K3s Back to SQLite…" in the editor', () => {
  const root = join(__dirname, '../..');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    contributes: {
      commands: { command: string; title: string }[];
      menus: Record<string, { command: string; when?: string }[]>;
    };
  };
  const id = COMMANDS.migrateEtcdToSqlite;
  it('is contributed with its title, on a cluster of the tree and in the palette', () => {
    assert.equal(
      pkg.contributes.commands.find((c) => c.command === id)?.title,
      'Move K3s Back to SQLite…',
    );
    const item = pkg.contributes.menus['view/item/context']?.find((m) => m.command === id);
    assert.equal(
      item?.when,
      'view == k3sEtcd.clusters && viewItem =~ /^cluster\\+external-etcd/ && isWorkspaceTrusted',
    );
    const palette = pkg.contributes.menus['commandPalette']?.find((m) => m.command === id);
    assert.equal(palette?.when, 'k3sEtcd.inventoryPresent');
  });
  it('needs a trusted workspace (it connects): not among the commands that run untrusted', () => {
    assert.ok(WORKS_UNTRUSTED.has('logShow'));
    assert.ok(!WORKS_UNTRUSTED.has('migrateEtcdToSqlite'));
    const registrar = readFileSync(join(root, 'src/editor/commands/registerCommands.ts'), 'utf8');
    assert.match(registrar, /migrateEtcdToSqlite: moveBackToSqliteCommand\(ctx, planDocs\)/);
  });
});
