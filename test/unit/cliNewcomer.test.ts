/**
 * The command line as a newcomer meets it (#19): a group alone prints its commands, a typo gets
 * "did you mean" in the tool's words (never Node's argument-parser sentence), a missing inventory
 * says where it looked and what to run, and `inventory show` names a defaulted key algorithm.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { suggest } from '../../src/cli/usage';
import { runCli } from '../fixtures/cli';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');
/** Node's parser sentences: none of them may reach a user. */
const NODE_SENTENCE =
  /Unknown option '|To specify a positional argument|argument is ambiguous|argument missing|does not take an argument/;

describe('the command line as a newcomer meets it', () => {
  let dir = '';
  let empty = '';
  const run = (args: string[], cwd = dir) => runCli(args, { cwd });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-newcomer-'));
    empty = await mkdtemp(join(tmpdir(), 'k3s-etcd-newcomer-empty-'));
    await copyFile(EXAMPLE, join(dir, 'k3s-etcd.yaml'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(empty, { recursive: true, force: true });
  });

  it('a group alone prints its commands with their summaries (stderr, exit 2); with --help on stdout, exit 0', async () => {
    const groups: Record<string, string[]> = {
      snapshot: ['save', 'list', 'restore-commands', 'restore'],
      k3s: ['backup', 'restore', 'install', 'kubeconfig'],
      member: ['add', 'remove', 'fix-peer-url'],
      inventory: ['validate', 'show', 'init'],
      certs: ['generate', 'reissue', 'import-ca', 'inspect'],
      migrate: ['sqlite-to-etcd'],
      provision: ['etcd'],
    };
    for (const [group, commands] of Object.entries(groups)) {
      const bare = await run([group]);
      assert.equal(bare.code, 2, group);
      assert.equal(bare.out, '');
      const help = await run([group, '--help']);
      assert.equal(help.code, 0, group);
      assert.equal(help.err, '');
      for (const r of [bare.err, help.out]) {
        assert.match(r, new RegExp(`^Usage: k3s-etcd ${group} <command> \\[options\\]`));
        for (const c of commands) assert.match(r, new RegExp(`^  ${group} ${c} +\\S`, 'm'), c);
        // Only the group's commands, not the whole table.
        assert.doesNotMatch(r, /^ {2}etcdctl-env /m);
      }
    }
    const save = await run(['snapshot', 'save', '--help']);
    assert.match(
      save.out,
      /^Usage: k3s-etcd snapshot save/m,
      'a command in a group keeps its own help',
    );
  });

  it('an unknown command gets "did you mean" from the known ones, exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['snapshto', 'save'],
        /^k3s-etcd: unknown command "snapshto" for k3s-etcd \(did you mean snapshot\?\)$/m,
      ],
      [
        ['snapshot', 'sav'],
        /^k3s-etcd: unknown command "sav" for k3s-etcd snapshot \(did you mean save\?\)$/m,
      ],
      [
        ['k3s', 'instal'],
        /^k3s-etcd: unknown command "instal" for k3s-etcd k3s \(did you mean install\?\)$/m,
      ],
      [['helth'], /^k3s-etcd: unknown command "helth" for k3s-etcd \(did you mean health\?\)$/m],
      [
        ['snapshot', 'frob'],
        /unknown command "frob" for k3s-etcd snapshot \(its commands: save, list, restore-commands, restore\)/,
      ],
      [['frobnicate'], /^k3s-etcd: unknown command "frobnicate" for k3s-etcd$/m],
    ];
    for (const [args, expected] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, expected);
    }
  });

  it('an unknown or misused flag is named with its command, "did you mean", never Node\'s sentence, exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['inventory', 'validate', '--jsn'],
        /^k3s-etcd: unknown flag --jsn for k3s-etcd inventory validate \(did you mean --json\?\)$/m,
      ],
      [
        ['members', '--endpoint', 'x'],
        /^k3s-etcd: unknown flag --endpoint for k3s-etcd members \(did you mean --endpoints\?\)$/m,
      ],
      [
        ['certs', 'generate', '--dryrun'],
        /unknown flag --dryrun for k3s-etcd certs generate \(did you mean --dry-run\?\)/,
      ],
      [
        ['members', '--foo'],
        /unknown flag --foo for k3s-etcd members \(its flags: --endpoints, --cacert, --cert, --key, --timeout\)/,
      ],
      [['health', '-x'], /^k3s-etcd: unknown flag -x for k3s-etcd health/m],
      [
        ['health', '--inventory'],
        /^k3s-etcd: flag --inventory for k3s-etcd health needs a value$/m,
      ],
      [
        ['health', '--inventory', '--json'],
        /^k3s-etcd: flag --inventory for k3s-etcd health needs a value before --json \(if --json is the value, write --inventory=--json\)$/m,
      ],
      [
        ['metrics', '--window', '-1'],
        /flag --window for k3s-etcd metrics needs a value before -1 \(if -1 is the value, write --window=-1\)/,
      ],
      [['health', '--json=yes'], /^k3s-etcd: flag --json for k3s-etcd health takes no value$/m],
      // Node reads -y=1 as the flags -y, -= and -1: said as the flag given a value.
      [
        ['health', '-y=1'],
        /^k3s-etcd: flag -y for k3s-etcd health takes no value \(it was given -y=1\)$/m,
      ],
      [['health', '-q=1'], /^k3s-etcd: unknown flag -q for k3s-etcd health \(its flags: /m],
    ];
    for (const [args, expected] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, expected);
      assert.doesNotMatch(r.err, NODE_SENTENCE);
    }
    const r = await run(['snapshot', 'save', '--foo']);
    assert.match(
      r.err,
      /\nRun "k3s-etcd snapshot save --help" for usage\.$/,
      "points at the command's help",
    );
  });

  it('before any command, flags are named as flags with "did you mean" from the global ones, never the whole help', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--helpp'], /^k3s-etcd: unknown flag --helpp for k3s-etcd \(did you mean --help\?\)$/m],
      [['-v'], /^k3s-etcd: unknown flag -v for k3s-etcd \(did you mean --version\?\)$/m],
      // Not an unknown command "x": the flag that swallowed nothing is the mistake.
      [
        ['--inventry', 'x', 'health'],
        /^k3s-etcd: unknown flag --inventry for k3s-etcd \(did you mean --inventory\?\)$/m,
      ],
      [
        ['--frob'],
        /^k3s-etcd: unknown flag --frob for k3s-etcd \(its flags: --inventory, --cluster, --json, --yes, --help, --version\)$/m,
      ],
      [['--inventory'], /^k3s-etcd: flag --inventory for k3s-etcd needs a value$/m],
      [['--json=1'], /^k3s-etcd: flag --json for k3s-etcd takes no value$/m],
      [['snapshot', '--foo'], /^k3s-etcd: unknown flag --foo for k3s-etcd snapshot \(its flags: /m],
      // A flag some command takes does not hide the unknown command.
      [
        ['helth', '--endpoints', 'x'],
        /^k3s-etcd: unknown command "helth" for k3s-etcd \(did you mean health\?\)$/m,
      ],
    ];
    for (const [args, expected] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.out, '', args.join(' '));
      assert.match(r.err, expected, args.join(' '));
      assert.doesNotMatch(r.err, /^Commands:/m, `${args.join(' ')}: not the whole help`);
      assert.doesNotMatch(r.err, NODE_SENTENCE);
    }
    assert.match((await run(['snapshot', '--foo'])).err, /\nRun "k3s-etcd snapshot --help"/);
    assert.match((await run(['--helpp'])).err, /\nRun "k3s-etcd --help" for usage\.$/);
    // What was right stays right.
    assert.equal((await run(['--version'])).out, '0.1.0');
    assert.equal((await run(['-h'])).code, 0);
    assert.match(
      (await run(['--inventory', 'k3s-etcd.yaml', 'inventory', 'validate'])).out,
      /valid/i,
    );
  });

  it('suggestions: a few edits or a prefix, closest first; nothing for single letters or far words', () => {
    assert.deepEqual(suggest('snap', ['snapshot', 'status', 'health']), ['snapshot']);
    assert.deepEqual(suggest('--forc', ['--force', '--json']), ['--force']);
    assert.deepEqual(suggest('-x', ['-y', '-h']), []);
    // A one-letter flag: the long flags it could stand for.
    assert.deepEqual(suggest('-v', ['--version', '--json', '-h']), ['--version']);
    assert.deepEqual(suggest('h', ['health', 'help']), [], 'words, not flags');
    assert.deepEqual(suggest('frobnicate', ['snapshot', 'status', 'health']), []);
  });

  it('a missing inventory says where it looked and what to run, without a line:column or an editor command', async () => {
    for (const args of [['health'], ['inventory', 'show'], ['inventory', 'validate']]) {
      const r = await run(args, empty);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(
        r.err,
        `k3s-etcd: no k3s-etcd.yaml in ${empty} (use --inventory PATH or \`k3s-etcd inventory init\`)`,
      );
    }
    const j = await run(['inventory', 'validate', '--json'], empty);
    assert.equal(j.code, 1);
    const parsed = JSON.parse(j.out) as { valid: boolean; problems: Array<{ text: string }> };
    assert.equal(parsed.valid, false);
    assert.deepEqual(
      parsed.problems.map((p) => p.text),
      [`no k3s-etcd.yaml in ${empty} (use --inventory PATH or \`k3s-etcd inventory init\`)`],
    );
    const other = await run(['members', '--inventory', 'lab/nope.yaml']);
    assert.equal(
      other.err,
      `k3s-etcd: no nope.yaml in ${join(dir, 'lab')} (use --inventory PATH or \`k3s-etcd inventory init\`)`,
    );
  });

  it('inventory show names the key algorithm when the inventory leaves it to the default', async () => {
    const text = (await readFile(EXAMPLE, 'utf8')).replace(', algorithm: ecdsa-p256', '');
    assert.notEqual(text, await readFile(EXAMPLE, 'utf8'));
    await writeFile(join(dir, 'defaulted.yaml'), text);
    const r = await run(['inventory', 'show', '--inventory', 'defaulted.yaml']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^edge-a .* pki pki\/edge-a \(ecdsa-p256, the default\)$/m);
    assert.doesNotMatch(r.out, /undefined/);
    const chosen = await run(['inventory', 'show']);
    assert.match(chosen.out, /pki pki\/edge-a \(ecdsa-p256\)$/m);
  });
});
