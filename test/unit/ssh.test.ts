/**
 * Shell quoting checked by a real POSIX shell; known_hosts handling checked against OpenSSH's
 * own tools (ssh-keygen makes the keys, hashes the file and prints fingerprints).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  judgeHostKey,
  knownHostsLine,
  parseKnownHosts,
  sha256Fingerprint,
  verifyHostKey,
} from '../../src/core/ssh/knownHosts';
import { hostSecretId } from '../../src/core/ssh/types';
import { PASSWORD_ATTEMPTS, authOrder, passwordMethod } from '../../src/core/ssh/auth';
import { shellCommand, shellQuote } from '../../src/core/ssh/quote';
import { describeHop, parseJumpSpec, resolveTarget } from '../../src/core/ssh/target';
import type { Cluster, Host } from '../../src/core/inventory/types';
import { cluster, host } from '../fixtures/inventory';

describe('shell quoting', () => {
  it('every argument reaches the command unchanged through a real sh', () => {
    const args = [
      'plain',
      'with space',
      "it's",
      '$HOME',
      '`id`',
      '"dq"',
      'a;rm -rf /tmp/x',
      '*',
      '',
      'new\nline',
      '--flag=value',
      'tab\there',
      '\\back',
    ];
    const out = execFileSync('sh', ['-c', `printf '%s\\0' ${args.map(shellQuote).join(' ')}`], {
      encoding: 'utf8',
    });
    assert.deepEqual(out.split('\0').slice(0, -1), args);
  });

  it('leaves safe words alone and quotes the rest', () => {
    assert.equal(
      shellCommand(['systemctl', 'restart', 'etcd.service']),
      'systemctl restart etcd.service',
    );
    assert.equal(shellCommand(['echo', "it's"]), `echo 'it'\\''s'`);
    assert.equal(shellQuote(''), "''");
  });
});

describe('known_hosts', () => {
  let dir = '';
  let key = '';
  let keyType = '';
  let otherKey = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-kh-'));
    for (const name of ['a', 'b']) {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)]);
    }
    [keyType = '', key = ''] = (await readFile(join(dir, 'a.pub'), 'utf8')).trim().split(/\s+/);
    otherKey = (await readFile(join(dir, 'b.pub'), 'utf8')).trim().split(/\s+/)[1] ?? '';
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('matches plain entries, [host]:port entries and entries hashed by ssh-keygen -H', async () => {
    const file = join(dir, 'known_hosts');
    await writeFile(
      file,
      `# lab\n127.0.1.21 ${keyType} ${key}\n[127.0.1.22]:2222 ${keyType} ${key}\n`,
    );
    let entries = parseKnownHosts(await readFile(file, 'utf8'));
    assert.deepEqual(verifyHostKey(entries, '127.0.1.21', 22, keyType, key), {
      status: 'match',
      line: 2,
    });
    assert.deepEqual(verifyHostKey(entries, '127.0.1.22', 2222, keyType, key), {
      status: 'match',
      line: 3,
    });
    assert.deepEqual(verifyHostKey(entries, '127.0.1.22', 22, keyType, key), { status: 'unknown' });
    execFileSync('ssh-keygen', ['-q', '-H', '-f', file]);
    const hashed = await readFile(file, 'utf8');
    assert.match(hashed, /^\|1\|/m);
    assert.doesNotMatch(hashed, /127\.0\.1\.21/);
    entries = parseKnownHosts(hashed);
    assert.equal(verifyHostKey(entries, '127.0.1.21', 22, keyType, key).status, 'match');
    assert.equal(verifyHostKey(entries, '127.0.1.22', 2222, keyType, key).status, 'match');
  });

  it('a different key for a known host is "changed", naming the lines; @revoked wins', () => {
    const entries = parseKnownHosts(
      `edge-1,127.0.1.21 ${keyType} ${key}\n@revoked * ${keyType} ${otherKey}\n`,
    );
    assert.deepEqual(verifyHostKey(entries, 'edge-1', 22, keyType, otherKey), {
      status: 'revoked',
      line: 2,
    });
    const noRevoke = parseKnownHosts(`edge-1,127.0.1.21 ${keyType} ${key}\n`);
    assert.deepEqual(verifyHostKey(noRevoke, '127.0.1.21', 22, keyType, otherKey), {
      status: 'changed',
      lines: [1],
      knownTypes: [keyType],
    });
  });

  it('wildcards and negation follow OpenSSH', () => {
    const entries = parseKnownHosts(`127.0.1.*,!127.0.1.99 ${keyType} ${key}\n`);
    assert.equal(verifyHostKey(entries, '127.0.1.5', 22, keyType, key).status, 'match');
    assert.equal(verifyHostKey(entries, '127.0.1.99', 22, keyType, key).status, 'unknown');
  });

  it('fingerprints as ssh-keygen -lf prints them; a line we add is found by ssh-keygen -F', async () => {
    const printed = execFileSync('ssh-keygen', ['-lf', join(dir, 'a.pub')], {
      encoding: 'utf8',
    }).split(/\s+/)[1];
    assert.equal(sha256Fingerprint(key), printed);
    const file = join(dir, 'added');
    await writeFile(
      file,
      `${knownHostsLine('127.0.1.23', 2200, keyType, key, Buffer.alloc(20, 7))}\n`,
    );
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.1.23]:2200', '-f', file], {
      encoding: 'utf8',
    });
    assert.match(found, /found: line 1/);
    assert.equal(
      verifyHostKey(parseKnownHosts(await readFile(file, 'utf8')), '127.0.1.23', 2200, keyType, key)
        .status,
      'match',
    );
  });
});

describe('SSH target: inventory values, then ~/.ssh/config, then defaults', () => {
  const env = {
    home: '/home/op',
    sshConfig: [
      'Host edge-*',
      '  User ops',
      '  Port 2222',
      '  IdentityFile ~/.ssh/edge_key',
      '  ProxyJump jump@bastion.example:2200',
      'Host 10.0.0.*',
      '  User admin',
      '  UserKnownHostsFile ~/.ssh/known_edge',
      '',
    ].join('\n'),
  };
  const clusterOf = (h: Host, knownHostsFile?: string): Cluster => ({
    ...cluster('/tmp/pki', [h]),
    ...(knownHostsFile ? { knownHostsFile } : {}),
  });

  it('an alias takes HostName, User, Port, IdentityFile and ProxyJump from the config', () => {
    const h = host('e1', '10.9.9.9', { ssh: { alias: 'edge-1' } });
    const t = resolveTarget(clusterOf(h), h, env);
    assert.deepEqual(
      [t.hostName, t.user, t.port, t.identityFiles, t.jumps.map(describeHop)],
      [
        'edge-1',
        'ops',
        2222,
        [{ path: '/home/op/.ssh/edge_key', explicit: true }],
        ['jump@bastion.example:2200'],
      ],
    );
  });

  it('values spelled out in the inventory win; without any, OpenSSH defaults apply', () => {
    const h = host('e1', '10.0.0.5', { ssh: { user: 'root', port: 22 }, identityFile: '/keys/id' });
    const t = resolveTarget(clusterOf(h), h, env);
    assert.deepEqual(
      [t.user, t.port, t.identityFiles[0]],
      ['root', 22, { path: '/keys/id', explicit: true }],
    );
    assert.deepEqual(
      t.knownHostsFiles,
      ['/home/op/.ssh/known_edge'],
      'UserKnownHostsFile honoured',
    );
    const bare = host('e2', '192.168.1.2');
    const d = resolveTarget(clusterOf(bare), bare, { home: '/home/op' });
    assert.deepEqual([d.hostName, d.user, d.port, d.jumps], ['192.168.1.2', 'root', 22, []]);
    assert.ok(d.identityFiles.every((f) => !f.explicit && f.path.startsWith('/home/op/.ssh/id_')));
    assert.deepEqual(d.knownHostsFiles, ['/home/op/.ssh/known_hosts', '/etc/ssh/ssh_known_hosts']);
  });

  it("the cluster's knownHostsFile is a workspace file beside the user's own, which are still read", () => {
    const h = host('e1', '10.0.0.5');
    const t = resolveTarget(clusterOf(h, '/site/known'), h, env);
    assert.deepEqual(
      [t.workspaceKnownHostsFile, t.knownHostsFiles],
      ['/site/known', ['/home/op/.ssh/known_edge']],
    );
    const bare = host('e2', '192.168.1.2');
    const d = resolveTarget(clusterOf(bare, '/site/known'), bare, { home: '/home/op' });
    assert.deepEqual(
      [d.workspaceKnownHostsFile, d.knownHostsFiles],
      ['/site/known', ['/home/op/.ssh/known_hosts', '/etc/ssh/ssh_known_hosts']],
    );
  });

  it('parses ProxyJump entries: user, IPv6 in brackets, port', () => {
    assert.deepEqual(parseJumpSpec('ops@[fd00::1]:2200'), {
      user: 'ops',
      host: 'fd00::1',
      port: 2200,
    });
    assert.deepEqual(parseJumpSpec('bastion'), { host: 'bastion' });
    assert.deepEqual(parseJumpSpec('ssh://a@b:23'), { user: 'a', host: 'b', port: 23 });
  });
});

describe('known_hosts: a workspace file adds hosts, never replaces a key the user trusts', () => {
  const KEY_A = Buffer.from('key-a').toString('base64');
  const KEY_B = Buffer.from('key-b').toString('base64');
  const own = (text: string) => ({ file: '/home/op/.ssh/known_hosts', text, own: true });
  const ws = (text: string) => ({ file: '/ws/known_hosts', text, own: false });
  const judge = (files: Parameters<typeof judgeHostKey>[0], key = KEY_B) =>
    judgeHostKey(files, '10.0.0.5', 22, 'ssh-ed25519', key);

  it('a host only the workspace file knows: its key is accepted from there', () => {
    assert.deepEqual(judge([ws(`10.0.0.5 ssh-ed25519 ${KEY_B}`), own('')]), {
      status: 'match',
      file: '/ws/known_hosts',
      line: 1,
    });
  });

  it("the user's own key for the host wins; another key pinned by the workspace is a conflict naming both files", () => {
    const files = [
      ws(`10.0.0.5 ssh-ed25519 ${KEY_B}`),
      own(`# mine\n10.0.0.5 ssh-ed25519 ${KEY_A}`),
    ];
    assert.deepEqual(judge(files), {
      status: 'conflict',
      file: '/ws/known_hosts',
      line: 1,
      ownFile: '/home/op/.ssh/known_hosts',
      ownLines: [2],
    });
    assert.equal(judge(files, KEY_A).status, 'match', 'the real host still connects');
    // A key neither file pins is a changed key of the user's own file.
    const c = judge([ws(''), own(`10.0.0.5 ssh-ed25519 ${KEY_A}`)]);
    assert.deepEqual(c, { status: 'changed', file: '/home/op/.ssh/known_hosts', lines: [1] });
  });

  it('a revocation in any file wins over a match in another', () => {
    const files = [ws(`10.0.0.5 ssh-ed25519 ${KEY_B}`), own(`@revoked * ssh-ed25519 ${KEY_B}`)];
    assert.equal(judge(files).status, 'revoked');
  });

  it("a host's stored secrets are keyed by its verified key as well as its name", () => {
    const hop = { user: 'root', hostName: '10.0.0.5', port: 22 };
    const a = hostSecretId('password', hop, sha256Fingerprint(KEY_A));
    const b = hostSecretId('password', hop, sha256Fingerprint(KEY_B));
    assert.notEqual(a, b);
    assert.equal(a, `password:root@10.0.0.5:22 ${sha256Fingerprint(KEY_A)}`);
    assert.notEqual(hostSecretId('sudo', hop, sha256Fingerprint(KEY_A)), a);
  });
});

describe('authentication order', () => {
  const hop = {
    identityFiles: [
      { path: '/home/op/.ssh/id_ed25519', explicit: false },
      { path: '/srv/keys/edge', explicit: true },
    ],
  };

  it("is OpenSSH's: the agent, then each identity file in the inventory's order", () => {
    assert.deepEqual(authOrder(hop, '/run/agent.sock'), [
      { kind: 'agent', needs: 'publickey', socket: '/run/agent.sock' },
      { kind: 'identity', needs: 'publickey', path: '/home/op/.ssh/id_ed25519', explicit: false },
      { kind: 'identity', needs: 'publickey', path: '/srv/keys/edge', explicit: true },
    ]);
  });

  it('without an agent socket, the identity files alone', () => {
    assert.deepEqual(
      authOrder(hop, '').map((c) => c.kind),
      ['identity', 'identity'],
    );
  });

  it('a password last, as keyboard-interactive when the server takes only that, three times', () => {
    assert.equal(passwordMethod(['publickey', 'password', 'keyboard-interactive']), 'password');
    assert.equal(passwordMethod(['publickey', 'keyboard-interactive']), 'keyboard-interactive');
    assert.equal(passwordMethod(['publickey']), undefined);
    assert.equal(PASSWORD_ATTEMPTS, 3);
  });
});
