/**
 * "This window runs on inventory host X", decided on recorded host identities: nspawn hosts that
 * share this machine's kernel and network, hosts on their own network, IPv6, loopback that never
 * counts, a cloned image, ambiguity, hostile output; and the remembered identities (keyed by the
 * SSH target, valid while known_hosts trusts the key they were read through).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import {
  canonicalAddress,
  checkedIdentity,
  decideThisHost,
  identityCommand,
  parseIdentity,
  sameMachine,
  type HostIdentity,
} from '../../src/core/thisHost/identity';
import {
  checkedCacheEntry,
  hostIdentities,
  identityCacheKey,
  stillTrusted,
  type CachedIdentity,
} from '../../src/core/thisHost/read';
import { LocalTransport } from '../../src/core/thisHost/terminal';
import { placementLines } from '../../src/core/thisHost/words';
import { resolveTarget } from '../../src/core/ssh/target';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { cluster, host } from '../fixtures/inventory';
import {
  BARE_CONTAINER,
  BRIDGE_EDGE,
  CLONE_OF_BRIDGE_EDGE_1,
  DEV_MACHINE,
  HOSTILE,
  IPV6_EDGE,
  SHARED_EDGE,
} from '../fixtures/hostIdentities';
import { spawnSync } from 'node:child_process';

const id = parseIdentity;
const reads = (recorded: Record<string, string>) =>
  Object.entries(recorded).map(([h, out]) => ({ host: h, identity: id(out) }));

describe('this host: identities from recorded host output', () => {
  it("parses this machine's own output of the identity command", () => {
    const r = spawnSync('sh', ['-c', identityCommand], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    const me = id(r.stdout);
    assert.ok(me.hostname.length > 0);
    assert.ok(me.addresses.includes('127.0.0.1'));
    assert.deepEqual(id(DEV_MACHINE), {
      hostname: 'vm',
      machineId: '3d1219c7c4c5404aaa1f6d2a48adfda4',
      addresses: ['127.0.0.1', '::1', '192.0.2.2', 'fd00::2', 'fe80::fc:ff:fe00:1'],
    });
  });

  it('nspawn hosts sharing the kernel and network: told apart by machine id and host name', () => {
    const d = decideThisHost(id(SHARED_EDGE['edge-1']), reads(SHARED_EDGE));
    assert.equal(d.local, 'edge-1');
    assert.match(d.reasons['edge-1']!, /^this machine: the same machine id and host name edge-1 /);
    assert.match(d.reasons['edge-2']!, /^another machine: another machine id$/);
    // The machine they run on shares every address with them, but none of them is it.
    const dev = decideThisHost(id(DEV_MACHINE), reads(SHARED_EDGE));
    assert.equal(dev.local, undefined);
    assert.deepEqual(
      Object.values(dev.reasons),
      Array(3).fill('another machine: another machine id'),
    );
  });

  it('hosts on their own network: the same machine id and address', () => {
    const me = id(BRIDGE_EDGE['edge-2']);
    const d = decideThisHost(me, reads(BRIDGE_EDGE));
    assert.equal(d.local, 'edge-2');
    assert.equal(
      d.reasons['edge-2'],
      'this machine: the same machine id and host name edge-2 and address 10.213.57.12',
    );
    assert.equal(decideThisHost(id(DEV_MACHINE), reads(BRIDGE_EDGE)).local, undefined);
  });

  it('IPv6: written out in full or compressed, with a zone, or IPv4-mapped, it is one address', () => {
    assert.equal(canonicalAddress('2001:0DB8:0:0:0:0:0:0011'), '2001:db8::11');
    assert.equal(canonicalAddress('fe80::1%eth0'), 'fe80::1');
    assert.equal(canonicalAddress('::ffff:10.213.57.11'), '10.213.57.11');
    assert.equal(canonicalAddress('::ffff:ad5:390b'), '10.213.57.11');
    assert.equal(canonicalAddress('10.0.0.1; id'), undefined);
    assert.deepEqual(id(IPV6_EDGE).addresses, ['127.0.0.1', '::1', '2001:db8::11', 'fe80::1']);
    // This side has no machine id (read in a sandbox): host name and address both decide.
    const me: HostIdentity = { hostname: 'edge-6.example.net', addresses: ['2001:db8::11'] };
    assert.deepEqual(sameMachine(me, id(IPV6_EDGE)), {
      match: true,
      why: 'the same host name edge-6.example.net and address 2001:db8::11 (no machine id)',
    });
    // The same name on another address is another machine.
    assert.equal(sameMachine({ ...me, addresses: ['2001:db8::12'] }, id(IPV6_EDGE)).match, false);
  });

  it('loopback, link-local and localhost never make a match', () => {
    assert.equal(sameMachine(id(BARE_CONTAINER), id(BARE_CONTAINER)).match, false);
    const lo: HostIdentity = { hostname: 'edge-1', addresses: ['127.0.1.61', '::1', 'fe80::1'] };
    assert.deepEqual(sameMachine(lo, lo), {
      match: false,
      why: 'no identifying address in common',
    });
    // The same id but nothing else in common: the name and addresses decide, loopback does not.
    const a = { ...lo, machineId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9' };
    assert.equal(sameMachine(a, { ...a, hostname: 'edge-2' }).match, false);
  });

  it('a cloned image keeps the machine id, not the name nor the addresses: not this machine', () => {
    assert.deepEqual(sameMachine(id(BRIDGE_EDGE['edge-1']), id(CLONE_OF_BRIDGE_EDGE_1)), {
      match: false,
      why: 'the same machine id but another host name and no address in common (a cloned image?)',
    });
  });

  it('two hosts that both look like this machine: none is taken, and both say why', () => {
    const me = id(SHARED_EDGE['edge-1']);
    const d = decideThisHost(me, [
      { host: 'a', identity: me },
      { host: 'b', identity: me },
      { host: 'c', unread: 'connect ECONNREFUSED 127.0.1.63:22' },
    ]);
    assert.equal(d.local, undefined);
    assert.match(d.reasons['a']!, /looks like this machine, as do b: none is taken/);
    assert.equal(
      d.reasons['c'],
      'its identity could not be read over SSH (connect ECONNREFUSED 127.0.1.63:22)',
    );
  });

  it('hostile output: no shell, path or junk gets through; the first line of a key wins', () => {
    const h = id(HOSTILE);
    assert.equal(h.hostname, '');
    assert.equal(h.machineId, undefined);
    assert.equal(h.addresses.length, 254, 'of the first 256 words, the two junk ones dropped');
    assert.ok(h.addresses.every((a) => /^10\.[01]\.\d+\.\d+$/.test(a)));
    // A host without a name cannot match by name.
    assert.equal(sameMachine({ hostname: '', addresses: ['10.0.0.1'] }, h).match, false);
    assert.equal(checkedIdentity({ hostname: 'x\nmachine_id=0', addresses: [] }), undefined);
    assert.equal(checkedIdentity({ hostname: 'edge-1', addresses: [1] }), undefined);
    assert.equal(
      checkedIdentity({ hostname: 'edge-1', machineId: 'nothex', addresses: [] }),
      undefined,
    );
  });
});

describe('this host: identities remembered under the SSH target and its host key', () => {
  let dir: string;
  const blob = Buffer.from(
    '\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20' + 'k'.repeat(32),
    'latin1',
  );
  const key = blob.toString('base64');
  const fingerprint = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  before(async () => {
    dir = await makeTempDir('k3s-etcd-thishost-');
    await mkdir(join(dir, '.ssh'));
    await writeFile(join(dir, '.ssh', 'known_hosts'), `[127.0.0.1]:1 ssh-ed25519 ${key}\n`);
  });
  after(() => removeTempDir(dir));

  const edge1 = host('edge-1', '127.0.0.1', { ssh: { port: 1, user: 'ops' } });
  const entry: CachedIdentity = {
    hostKey: '',
    identity: id(BRIDGE_EDGE['edge-1']),
    readAt: '2026-12-07T03:00:00.000Z',
  };

  it('keys name every hop; malformed entries are not used', () => {
    const c = cluster(dir, []);
    const t = resolveTarget(c, host('e', '10.0.0.1', { ssh: { proxyJump: 'jump@bastion:2222' } }), {
      home: dir,
    });
    assert.equal(identityCacheKey(t), 'k3sEtcd.identity root@10.0.0.1 via jump@[bastion]:2222');
    assert.equal(checkedCacheEntry({ ...entry, hostKey: 'SHA256:short' }), undefined);
    assert.equal(checkedCacheEntry({ ...entry, hostKey: fingerprint, identity: {} }), undefined);
    assert.deepEqual(checkedCacheEntry({ ...entry, hostKey: fingerprint }), {
      ...entry,
      hostKey: fingerprint,
    });
  });

  it('a remembered identity is used while known_hosts trusts its key, read again otherwise', async () => {
    const c = cluster(dir, [edge1]);
    const t = resolveTarget(c, edge1, { home: dir });
    assert.equal(await stillTrusted(t, fingerprint), true);
    assert.equal(await stillTrusted(t, 'SHA256:' + 'A'.repeat(43)), false);
    const store = new Map<string, unknown>([
      [identityCacheKey(t), { ...entry, hostKey: fingerprint }],
    ]);
    const cache = {
      get: (k: string) => store.get(k),
      set: (k: string, v: unknown) => void store.set(k, v),
    };
    const ssh = {
      env: { home: dir },
      prompts: { secret: async () => undefined, unknownHostKey: async () => false },
      timeoutMs: 2000,
    };
    const me = id(BRIDGE_EDGE['edge-1']);
    // Nothing listens on port 1: the remembered identity answers without a connection.
    const [remembered] = await hostIdentities(c, [edge1], ssh, cache, me);
    assert.deepEqual(remembered, { host: 'edge-1', identity: entry.identity });
    // Another key for that address in known_hosts now: the entry is not used, the host is read.
    await writeFile(
      join(dir, '.ssh', 'known_hosts'),
      `[127.0.0.1]:1 ssh-ed25519 ${Buffer.from('other').toString('base64')}\n`,
    );
    const [reread] = await hostIdentities(c, [edge1], ssh, cache, me);
    assert.equal(reread?.identity, undefined);
    assert.match(reread?.unread ?? '', /ECONNREFUSED|refused/i);
  });
});

describe("this host: root commands in the task's terminal, sudo asking there", () => {
  let dir: string;
  let fakeSudo: string;
  before(async () => {
    dir = await makeTempDir('k3s-etcd-thishost-sudo-');
    // sudo's conversation as sudo has it: the prompt and the answer on the terminal, echo off.
    fakeSudo = join(dir, 'sudo');
    await writeFile(
      fakeSudo,
      [
        '#!/bin/sh',
        "printf '[sudo] password for tester: ' >/dev/tty",
        'stty -echo </dev/tty; read -r pw </dev/tty; stty echo </dev/tty; echo >/dev/tty',
        'if [ "$pw" != "s3cret pw" ]; then echo "Sorry, try again." >/dev/tty; exit 1; fi',
        'exec "$@"',
      ].join('\n'),
      { mode: 0o700 },
    );
  });
  after(() => removeTempDir(dir));

  /** A terminal where a person types `answer` each time a password is asked. */
  function terminal(answer: string) {
    const shown: string[] = [];
    let listener: ((d: string) => void) | undefined;
    let asked = 0;
    return {
      shown,
      asked: () => asked,
      io: {
        write: (t: string) => {
          shown.push(t);
          if (/password for tester: $/.test(t)) {
            asked++;
            setTimeout(() => listener?.(`${answer}\r`), 20);
          }
        },
        onInput: (l: (d: string) => void) => {
          listener = l;
          return { dispose: () => (listener = undefined) };
        },
      },
    };
  }

  it('asks once, keeps stdout, stderr and the exit code apart from the conversation', async () => {
    const term = terminal('s3cret pw');
    const t = new LocalTransport({ label: 'edge-1', io: term.io, sudo: [fakeSudo] });
    try {
      const lines: string[] = [];
      const r = await t.exec('read -r x; echo "got $x"; echo warn >&2; exit 3', {
        sudo: true,
        stdin: 'the script\n',
        onStdout: (c) => lines.push(c),
      });
      assert.deepEqual(r, { code: 3, stdout: 'got the script\n', stderr: 'warn\n' });
      assert.deepEqual(lines, ['got the script\n']);
      const second = await t.exec('printf "%s\\n" "$PWD" >/dev/null; echo ok', { sudo: true });
      assert.equal(second.stdout, 'ok\n');
      const plain = await t.exec('echo plain; exit 0');
      assert.equal(plain.stdout, 'plain\n');
      assert.equal(term.asked(), 1, 'one password for the whole task');
      const text = term.shown.join('');
      assert.match(text, /\[sudo\] password for tester: /);
      assert.doesNotMatch(text, /s3cret|__K3S|got the script|cmd-/);
    } finally {
      t.close();
    }
  });

  it('a refused password fails with words that say what to check', async () => {
    const term = terminal('wrong');
    const t = new LocalTransport({ label: 'edge-1', io: term.io, sudo: [fakeSudo] });
    try {
      await assert.rejects(
        t.exec('echo never', { sudo: true }),
        /edge-1: sudo did not make this window's terminal root \(exit 1\): check the password/,
      );
      assert.match(term.shown.join(''), /Sorry, try again\./);
    } finally {
      t.close();
    }
  });
});

describe('this host: the preview says which hosts run here and which over SSH', () => {
  it('names the host of this window, the others, and every reason', () => {
    const me = id(SHARED_EDGE['edge-1']);
    const d = decideThisHost(me, reads(SHARED_EDGE));
    const lines = placementLines(['edge-1', 'edge-2', 'edge-3'], d);
    assert.match(
      lines[0]!,
      /^edge-1: here, in this window's terminal, as root through sudo \(sudo asks for your password there; it is not stored\)$/,
    );
    assert.match(lines[1]!, /^edge-2, edge-3: over SSH from edge-1 /);
    assert.deepEqual(
      lines.slice(2).map((l) => l.split(':')[0]),
      ['  edge-1', '  edge-2', '  edge-3'],
    );
    // From elsewhere, and for hosts other than this window's: all over SSH.
    assert.equal(
      placementLines(['edge-2'], d)[0],
      "edge-2: over SSH from edge-1 (the inventory's keys and known_hosts, else those in ~/.ssh of this user there)",
    );
    const away = decideThisHost(id(DEV_MACHINE), reads(SHARED_EDGE));
    assert.equal(
      placementLines(['edge-1', 'edge-2'], away)[0],
      'edge-1, edge-2: over SSH from this machine',
    );
  });
});
