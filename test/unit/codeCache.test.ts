/**
 * The command line's code cache (src/cli/codeCache.ts): a folder only the user owns, one file per
 * bundle that grows with the commands run, a rejected, corrupt or foreign file never used as is
 * and rewritten atomically, K3S_ETCD_NO_CODE_CACHE=1 turning it off; and the bundle runs the same
 * with or without it. Each run is a real process (the cache is written when it exits).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { codeCacheDir, commandKey, decodeCodeCache } from '../../src/cli/codeCache';
import { ipVersion } from '../../src/core/inventory/addressFormat';

const CODE_CACHE = join(__dirname, '../../src/cli/codeCache.ts');

let dir = '';
let bundle = '';

/** One process running the bundle through the cache: its stdout, and the cache folder's files. */
function run(command: string, env: Record<string, string> = {}): string {
  const script = `require(${JSON.stringify(CODE_CACHE)}).runCachedBundle(${JSON.stringify(bundle)}, ${JSON.stringify(command)});`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CACHE_HOME: join(dir, 'cache'), ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

const cacheDir = () => join(dir, 'cache', 'k3s-etcd');
const cacheFiles = () => readdirSync(cacheDir()).filter((f) => f.endsWith('.v8'));
const cacheFile = () => {
  const files = cacheFiles();
  assert.equal(files.length, 1, `one cache file: ${files.join(', ')}`);
  return join(cacheDir(), files[0]!);
};
const commandsIn = (file: string) => decodeCodeCache(readFileSync(file))?.commands;

describe('code cache of the command line', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-code-cache-'));
    bundle = join(dir, 'bundle.js');
    // A CommonJS bundle: its require, module, __dirname, and a function it runs.
    writeFileSync(
      bundle,
      `const { basename } = require('node:path');
function answer(x) { return x * 2; }
module.exports.v = answer(21);
process.stdout.write(basename(__dirname) + ' ' + basename(__filename) + ' ' + answer(21) + ' ' + (typeof exports) + '\\n');\n`,
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is off with K3S_ETCD_NO_CODE_CACHE=1, and the bundle runs the same', () => {
    const want = `${dir.split('/').pop()} bundle.js 42 object\n`;
    assert.equal(run('members', { K3S_ETCD_NO_CODE_CACHE: '1' }), want);
    assert.throws(() => statSync(cacheDir()), /ENOENT/);
  });

  it('is written after the first run, in a 0700 folder, 0600, and grows with each new command', () => {
    const want = `${dir.split('/').pop()} bundle.js 42 object\n`;
    assert.equal(run('members'), want);
    assert.equal(statSync(cacheDir()).mode & 0o777, 0o700);
    const file = cacheFile();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(commandsIn(file), ['members']);
    const first = statSync(file);
    // The same command again: read, accepted, not written again.
    assert.equal(run('members'), want);
    assert.equal(statSync(cacheFile()).ino, first.ino);
    // Another command: written again (atomically: a new file renamed over it), with both.
    assert.equal(run('health'), want);
    assert.notEqual(statSync(cacheFile()).ino, first.ino);
    assert.deepEqual(commandsIn(cacheFile()), ['members', 'health']);
  });

  it('rewrites a corrupt cache, and never reads one others can write', () => {
    const want = `${dir.split('/').pop()} bundle.js 42 object\n`;
    const file = cacheFile();
    writeFileSync(file, Buffer.from('k3s-etcd-code-cache members,health\nnot V8 data at all'));
    assert.equal(run('members'), want);
    assert.deepEqual(commandsIn(cacheFile()), ['members']);
    // Group-writable: not read (someone else could have put code in it), replaced by the user's own.
    chmodSync(cacheFile(), 0o664);
    assert.equal(run('members'), want);
    assert.equal(statSync(cacheFile()).mode & 0o777, 0o600);
    // Garbage without the first line.
    writeFileSync(cacheFile(), 'garbage', { mode: 0o600 });
    assert.equal(run('status'), want);
    assert.deepEqual(commandsIn(cacheFile()), ['status']);
  });

  it('uses no folder that is not the user’s own and private', () => {
    const open = join(dir, 'open');
    mkdirSync(join(open, 'k3s-etcd'), { recursive: true });
    chmodSync(join(open, 'k3s-etcd'), 0o777);
    assert.equal(codeCacheDir({ XDG_CACHE_HOME: open }), undefined);
    chmodSync(join(open, 'k3s-etcd'), 0o700);
    assert.equal(codeCacheDir({ XDG_CACHE_HOME: open }), join(open, 'k3s-etcd'));
    // A relative XDG_CACHE_HOME is ignored (the XDG rule): ~/.cache instead.
    assert.equal(
      codeCacheDir({ XDG_CACHE_HOME: 'rel', HOME: join(dir, 'home') }),
      join(dir, 'home', '.cache', 'k3s-etcd'),
    );
    assert.equal(codeCacheDir({}), undefined);
  });

  it('remembers a run by the command’s first word', () => {
    assert.equal(commandKey(['members', '--json']), 'members');
    assert.equal(commandKey(['--json', 'inventory', 'validate']), 'inventory');
    assert.equal(commandKey(['--help']), '-');
    assert.equal(commandKey(['/etc/passwd']), '-');
  });
});

describe('ipVersion', () => {
  it('is net.isIP (without compiling the IPv6 pattern for what cannot be IPv6)', () => {
    for (const v of [
      '10.0.0.1',
      '127.0.0.1',
      '10.0.0.999',
      '::1',
      'fe80::1%eth0',
      '2001:db8::8a2e:370:7334',
      '::ffff:10.0.0.1',
      'edge-1',
      'edge-1.example.com',
      '',
      ':',
      '1.2.3',
      '[::1]',
    ])
      assert.equal(ipVersion(v), isIP(v), v);
  });
});
