import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  terminalQuestions,
  tokenFromOptions,
  UsageError,
  type RunContext,
} from '../../src/cli/context';
import { runCli, type CliRun } from '../fixtures/cli';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');

let dir = '';

const run = (
  args: string[],
  opts: { interactive?: boolean; answer?: string; cwd?: string; stdin?: string } = {},
): Promise<CliRun> => runCli(args, { ...opts, cwd: opts.cwd ?? dir });

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
    assert.match(r.err, /no nope\.yaml in .*inventory init/);
  });

  it('inventory show: hosts, roles and derived URLs; --json has endpoints', async () => {
    const r = await run(['inventory', 'show']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^edge-a {2}external-etcd {2}etcd v3\.6\.14/);
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

  it("inventory show: the etcd tuning in the inventory's words, in text and --json", async () => {
    const tuned = join(dir, 'tuned.yaml');
    await writeFile(
      tuned,
      (await readFile(EXAMPLE, 'utf8')).replace(
        'etcd: { version: v3.6.14,',
        'etcd: { version: v3.6.14, profile: edge, quotaBackendBytes: 4GiB, extraArgs: [--log-level=warn],',
      ),
    );
    const r = await run(['inventory', 'show', '--inventory', 'tuned.yaml']);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /^ {2}etcd tuning: profile edge, quotaBackendBytes 4294967296 \(4096 MiB\), heartbeatInterval 500 ms, electionTimeout 5000 ms, extraArgs --log-level=warn$/m,
    );
    const j = await run(['inventory', 'show', '--inventory', 'tuned.yaml', '--json']);
    const parsed = JSON.parse(j.out) as { clusters: Array<{ etcd: { tuning: object } }> };
    assert.deepEqual(parsed.clusters[0]?.etcd.tuning, {
      profile: 'edge',
      quotaBackendBytes: 4294967296,
      heartbeatInterval: 500,
      electionTimeout: 5000,
      extraArgs: ['--log-level=warn'],
    });
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
      ['keyspace', '--top', 'many'],
      ['keyspace', '--top', '5000'],
      // --settings reads the inventory's hosts: no endpoints of its own.
      ['status', '--settings', '--endpoints', 'https://127.0.0.1:2379'],
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

describe('the terminal: one question at a time', () => {
  /** A settled-or-not probe: the value, or "pending" when the promise has not settled yet. */
  const state = async <T>(p: Promise<T>): Promise<T | 'pending'> =>
    Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
  /** Waits until `text` was written to `output` (the question is on screen). */
  const shown = async (written: string[], text: string) => {
    const until = Date.now() + 2000;
    while (!written.join('').includes(text)) {
      assert.ok(Date.now() < until, `"${text}" never shown; written: ${written.join('')}`);
      await new Promise((r) => setImmediate(r));
    }
  };

  it('two hosts asking at once: one typed line answers only the first, the second waits for the next line', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const written: string[] = [];
    output.on('data', (d: Buffer) => written.push(d.toString()));
    const q = terminalQuestions(input, output);
    const first = q.ask('Trust host A? [y/N] ');
    const second = q.ask('Trust host B? [y/N] ');
    await shown(written, 'Trust host A?');
    assert.ok(!written.join('').includes('Trust host B?'), 'B is not asked while A waits');
    input.write('y\n');
    assert.equal(await first, 'y');
    assert.equal(await state(second), 'pending', 'one "y" answers one host key');
    await shown(written, 'Trust host B?');
    input.write('n\n');
    assert.equal(await second, 'n');

    const pw1 = q.askSecret('Password for root@a: ');
    const pw2 = q.askSecret('Password for root@b: ');
    await shown(written, 'Password for root@a: ');
    input.write('secret-a\n');
    assert.equal(await pw1, 'secret-a');
    assert.equal(await state(pw2), 'pending', 'one typed password answers one prompt');
    await shown(written, 'Password for root@b: ');
    input.write('secret-b\n');
    assert.equal(await pw2, 'secret-b');
    assert.ok(!written.join('').includes('secret-'), 'passwords are never echoed');
    input.end();
  });
});

describe('the K3s token never needs a command line', () => {
  let tdir = '';
  before(async () => {
    tdir = await mkdtemp(join(tmpdir(), 'k3s-etcd-cli-token-'));
    await copyFile(EXAMPLE, join(tdir, 'k3s-etcd.yaml'));
  });
  after(async () => {
    await rm(tdir, { recursive: true, force: true });
  });
  const ctxWith = (values: RunContext['values'], stdin?: string) => {
    const err: string[] = [];
    const ctx: RunContext = {
      global: {
        inventory: '/nonexistent/k3s-etcd.yaml',
        cluster: undefined,
        json: false,
        yes: false,
      },
      values,
      args: [],
      io: {
        out: () => undefined,
        err: (t) => err.push(t),
        interactive: false,
        cwd: '/',
        ask: async () => '',
        askSecret: async () => '',
        ...(stdin === undefined ? {} : { readSecretInput: async () => stdin }),
      },
    };
    return { ctx, err };
  };

  it('--token-file - reads it from standard input (trimmed), with no warning', async () => {
    const { ctx, err } = ctxWith({ 'token-file': '-' }, 'K10abc::server:s3cret\n');
    assert.equal(await tokenFromOptions(ctx), 'K10abc::server:s3cret');
    assert.deepEqual(err, []);
  });

  it('--token-file - with nothing on standard input, or no standard input, is a usage error', async () => {
    await assert.rejects(
      tokenFromOptions(ctxWith({ 'token-file': '-' }, ' \n').ctx),
      (e) => e instanceof UsageError && /standard input held no token/.test(e.message),
    );
    await assert.rejects(
      tokenFromOptions(ctxWith({ 'token-file': '-' }).ctx),
      (e) => e instanceof UsageError && /no standard input/.test(e.message),
    );
  });

  it('--token-file PATH still reads the file; --token still works but warns on stderr', async () => {
    const file = join(tdir, 'token');
    await writeFile(file, 'K10file::server:x\n');
    assert.equal(await tokenFromOptions(ctxWith({ 'token-file': file }).ctx), 'K10file::server:x');
    const { ctx, err } = ctxWith({ token: 'K10argv::server:y' });
    assert.equal(await tokenFromOptions(ctx), 'K10argv::server:y');
    assert.match(
      err.join('\n'),
      /warning: --token puts the cluster token on the command line, where other users of this machine can read it/,
    );
    assert.match(err.join('\n'), /--token-file -/);
  });

  it('migrate sqlite-to-etcd: --token warns through the command line, --token-file - reads stdin', async () => {
    const warned = await run(
      ['migrate', 'sqlite-to-etcd', '--source', 'none.db', '--token', 'K10x::server:y'],
      { cwd: tdir },
    );
    assert.match(warned.err, /warning: --token puts the cluster token on the command line/);
    const piped = await run(
      ['migrate', 'sqlite-to-etcd', '--source', 'none.db', '--token-file', '-'],
      { stdin: '', cwd: tdir },
    );
    assert.equal(piped.code, 2, piped.err);
    assert.match(piped.err, /--token-file -: standard input held no token/);
    assert.doesNotMatch(piped.err, /warning/);
  });
});
