import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main, type CliIO } from '../../src/cli/main';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');

interface Run {
  code: number;
  out: string;
  err: string;
}

let dir = '';

async function run(
  args: string[],
  opts: { interactive?: boolean; answer?: string; cwd?: string } = {},
): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  const io: CliIO = {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    interactive: opts.interactive ?? false,
    cwd: opts.cwd ?? dir,
    ask: async (q) => {
      asked.push(q);
      return opts.answer ?? '';
    },
    askSecret: async (q) => {
      asked.push(q);
      return opts.answer ?? '';
    },
  };
  const code = await main(args, io);
  return { code, out: out.join('\n'), err: [...asked, ...err].join('\n') };
}

describe('k3s-etcd command line', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-cli-'));
    await copyFile(EXAMPLE, join(dir, 'k3s-etcd.yaml'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('inventory validate: 0 on the example, reads ./k3s-etcd.yaml by default', async () => {
    const r = await run(['inventory', 'validate']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'k3s-etcd.yaml: valid (1 cluster, 3 hosts, 3 etcd members)');
  });

  it('inventory validate: 1 with the same messages as the editor on a broken file', async () => {
    const bad = join(dir, 'bad.yaml');
    const text = (await readFile(EXAMPLE, 'utf8')).replace('127.0.1.23', '10.0.0.999');
    await writeFile(bad, text);
    const r = await run(['--inventory', 'bad.yaml', 'inventory', 'validate']);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /^bad\.yaml:24:18 clusters\[0\]\.hosts\[2\]\.address: "10\.0\.0\.999" is not an IP address or hostname$/m,
    );
    const j = await run(['inventory', 'validate', '--inventory', 'bad.yaml', '--json']);
    assert.equal(j.code, 1);
    const parsed = JSON.parse(j.out) as {
      valid: boolean;
      problems: Array<{ line: number; column: number; path: string }>;
    };
    assert.equal(parsed.valid, false);
    assert.deepEqual(
      parsed.problems.map((p) => [p.line, p.column, p.path]),
      [[24, 18, 'clusters[0].hosts[2].address']],
    );
  });

  it('a missing inventory is exit 1 with a message that says how to create one', async () => {
    const r = await run(['inventory', 'validate', '--inventory', 'nope.yaml']);
    assert.equal(r.code, 1);
    assert.match(r.err, /nope\.yaml not found in .*inventory init/);
  });

  it('inventory show: hosts, roles and derived URLs; --json has endpoints', async () => {
    const r = await run(['inventory', 'show']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^edge-a {2}external-etcd {2}etcd v3\.5\.17/);
    assert.match(
      r.out,
      /edge-1 +root@127\.0\.1\.21:22 +etcd,k3s-server +edge-1 +https:\/\/127\.0\.1\.21:2379 +https:\/\/127\.0\.1\.21:2380/,
    );
    const j = await run(['inventory', 'show', '--json']);
    const parsed = JSON.parse(j.out) as { clusters: Array<{ name: string; endpoints: string[] }> };
    assert.deepEqual(parsed.clusters[0]?.endpoints, [
      'https://127.0.1.21:2379',
      'https://127.0.1.22:2379',
      'https://127.0.1.23:2379',
    ]);
  });

  it('--cluster: unknown names and several clusters without it are usage errors listing the clusters', async () => {
    const r = await run(['inventory', 'show', '--cluster', 'nope']);
    assert.equal(r.code, 2);
    assert.match(r.err, /no cluster "nope" in the inventory \(clusters: edge-a\)/);
    const two = join(dir, 'two.yaml');
    await writeFile(
      two,
      (await readFile(EXAMPLE, 'utf8')) +
        '  - name: edge-b\n    hosts: [{ name: b1, address: 127.0.1.31, roles: [etcd] }]\n',
    );
    const m = await run(['members', '--inventory', 'two.yaml']);
    assert.equal(m.code, 2);
    assert.match(m.err, /several clusters: pass --cluster NAME \(one of: edge-a, edge-b\)/);
  });

  it('usage errors exit 2: unknown command, unknown option, stray argument, partial TLS flags', async () => {
    for (const args of [
      ['frobnicate'],
      ['inventory', 'validate', '--bogus'],
      ['inventory', 'validate', 'extra'],
      ['members', '--cacert', 'x'],
      ['metrics', '--window', 'soon'],
      ['metrics', '--window', '-1'],
      [],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.ok(r.err.length > 0);
    }
  });

  it('--help for the tool and for each subcommand', async () => {
    const top = await run(['--help']);
    assert.equal(top.code, 0);
    for (const name of [
      'inventory validate',
      'inventory show',
      'inventory init',
      'members',
      'metrics',
    ]) {
      assert.ok(top.out.includes(name), name);
      const r = await run([...name.split(' '), '--help']);
      assert.equal(r.code, 0);
      assert.match(r.out, new RegExp(`Usage: k3s-etcd ${name}`));
      assert.match(r.out, /--inventory PATH/);
    }
  });

  it('inventory init: writes a starter; refuses to replace without a terminal or --yes; asks on a terminal', async () => {
    const sub = await mkdtemp(join(dir, 'init-'));
    const created = await run(['inventory', 'init'], { cwd: sub });
    assert.equal(created.code, 0, created.err);
    const file = join(sub, 'k3s-etcd.yaml');
    assert.match(await readFile(file, 'utf8'), /^# K3s etcd inventory/);
    const valid = await run(['inventory', 'validate'], { cwd: sub });
    assert.equal(valid.code, 0, valid.err);

    await writeFile(file, 'mine\n');
    const refused = await run(['inventory', 'init'], { cwd: sub });
    assert.equal(refused.code, 2);
    assert.match(refused.err, /Refusing without --yes: there is no terminal to ask/);
    const declined = await run(['inventory', 'init'], { cwd: sub, interactive: true, answer: 'n' });
    assert.equal(declined.code, 1);
    assert.match(declined.err, /Replace it with the starter inventory\? \[y\/N\]/);
    assert.equal(await readFile(file, 'utf8'), 'mine\n', 'nothing replaced without a yes');
    const yes = await run(['inventory', 'init', '--yes'], { cwd: sub });
    assert.equal(yes.code, 0);
    assert.match(await readFile(file, 'utf8'), /^# K3s etcd inventory/);
  });

  it('members: an unreachable endpoint is a failed check (exit 1) naming the endpoint', async () => {
    const r = await run(['members', '--endpoints', 'http://127.0.0.1:9', '--timeout', '1000']);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /No etcd endpoint answered the member list:\n {2}http:\/\/127\.0\.0\.1:9: /,
    );
  });
});
