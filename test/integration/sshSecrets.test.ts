/**
 * Stored SSH secrets belong to a host key, not to a name. A real password host, a jump host that
 * reroutes whatever it is asked to reach, and an impostor that logs every secret it is sent, all
 * `ssh2` servers on loopback. A password remembered for the real host must never reach the
 * impostor when a (cloned, hostile) inventory routes the same user@host:port through the jump
 * host with the impostor's key pinned in its own known_hosts file: the person is asked instead.
 * And that workspace file is refused outright when the user's own known_hosts knows the host
 * with another key.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { K3sEtcdError } from '../../src/core/errors';
import type { Cluster } from '../../src/core/inventory/types';
import { connectSsh } from '../../src/core/ssh/transport';
import { type SecretRequest, type SshPrompts, type UnknownHostKey } from '../../src/core/ssh/types';
import { resolveTarget, type SshEnvironment } from '../../src/core/ssh/target';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { startFakeSsh, type FakeSsh } from '../../scripts/harness/sshd';
import { cluster, host } from './harness/tlsCluster';

const PASSWORD = 'hunter2-real-host';

/** Prompts that keep secrets by the id the core gives, as the editor's SecretStorage does. */
interface Storing extends SshPrompts {
  asked: SecretRequest[];
  hostKeys: UnknownHostKey[];
}

function storing(store: Map<string, string>, typed?: string): Storing {
  const r: Storing = {
    asked: [],
    hostKeys: [],
    secret: async (req) => {
      const stored = req.attempt === 1 ? store.get(req.id) : undefined;
      if (stored !== undefined) return stored;
      r.asked.push(req);
      return typed;
    },
    secretResult: (req, ok, value) => {
      if (ok) store.set(req.id, value);
      else store.delete(req.id);
    },
    unknownHostKey: async (k) => {
      r.hostKeys.push(k);
      return false;
    },
  };
  return r;
}

function fingerprint(hostKey: string): string {
  return execFileSync('ssh-keygen', ['-lf', '-'], { input: `h ${hostKey}\n` })
    .toString()
    .split(' ')[1] as string;
}

async function rejection(p: Promise<unknown>): Promise<K3sEtcdError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof K3sEtcdError, `expected K3sEtcdError, got ${String(err)}`);
    return err;
  }
  assert.fail('the connection was expected to fail');
}

describe('stored SSH secrets are bound to the host key they were first used with', () => {
  let dir = '';
  let env: SshEnvironment;
  let ownKnown = '';
  let real: FakeSsh;
  let impostor: FakeSsh;
  let jump: FakeSsh;
  let legit: Cluster;
  let hostile: Cluster;
  const store = new Map<string, string>();

  before(async () => {
    dir = await makeTempDir('k3s-etcd-ssh-secrets-');
    mkdirSync(join(dir, 'home', '.ssh'), { recursive: true });
    env = { home: join(dir, 'home') };
    ownKnown = join(dir, 'home', '.ssh', 'known_hosts');
    real = await startFakeSsh({ address: '127.0.0.61', password: PASSWORD });
    impostor = await startFakeSsh({ address: '127.0.0.63' });
    jump = await startFakeSsh({
      address: '127.0.0.62',
      open: true,
      forwardTo: { host: impostor.address, port: impostor.port },
    });
    const realName = `[${real.address}]:${real.port}`;
    // The user's own workspace: the real host, its key pinned there.
    const legitKnown = join(dir, 'legit', 'known_hosts');
    mkdirSync(join(dir, 'legit'));
    writeFileSync(legitKnown, `${realName} ${real.hostKey}\n`);
    legit = {
      ...cluster(dir, [host('edge-1', real.address, { ssh: { port: real.port } })]),
      knownHostsFile: legitKnown,
    };
    // A cloned workspace: the same user@host:port, through its jump host, the impostor's key pinned.
    const hostileKnown = join(dir, 'cloned', 'known_hosts');
    mkdirSync(join(dir, 'cloned'));
    writeFileSync(
      hostileKnown,
      `[${jump.address}]:${jump.port} ${jump.hostKey}\n${realName} ${impostor.hostKey}\n`,
    );
    const proxyJump = `root@${jump.address}:${jump.port}`;
    hostile = {
      ...cluster(dir, [host('edge-1', real.address, { ssh: { port: real.port, proxyJump } })]),
      knownHostsFile: hostileKnown,
    };
  });
  after(async () => {
    await jump?.stop();
    await impostor?.stop();
    await real?.stop();
    if (dir) await removeTempDir(dir);
  });

  const connect = (c: Cluster, prompts: SshPrompts) =>
    connectSsh(resolveTarget(c, c.hosts[0]!, env), { prompts, agentSocket: '' });

  it('the impostor behind another jump host gets no stored password: the person is asked', async () => {
    const first = storing(store, PASSWORD);
    (await connect(legit, first)).close();
    assert.deepEqual(
      first.asked.map((a) => [a.kind, a.subject, a.hostKey]),
      [['password', `root@${real.address}:${real.port}`, fingerprint(real.hostKey)]],
    );
    assert.equal(store.size, 1, 'the password is remembered');

    const again = storing(store);
    (await connect(legit, again)).close();
    assert.equal(again.asked.length, 0, 'the real host gets the stored password without a prompt');
    assert.deepEqual(
      real.attempts.filter((a) => a.secret !== undefined).map((a) => a.secret),
      [PASSWORD, PASSWORD],
    );

    const rerouted = storing(store);
    const err = await rejection(connect(hostile, rerouted));
    assert.equal(err.code, 'ssh-auth', err.message);
    assert.deepEqual(
      jump.forwards,
      [{ host: real.address, port: real.port }],
      "the jump host was asked for the real host's name and port",
    );
    assert.ok(impostor.attempts.length > 0, 'the connection reached the impostor');
    assert.deepEqual(
      impostor.attempts.filter((a) => a.secret !== undefined),
      [],
      'the impostor received no secret',
    );
    assert.deepEqual(
      rerouted.asked.map((a) => [a.kind, a.subject, a.hostKey]),
      [['password', `root@${real.address}:${real.port}`, fingerprint(impostor.hostKey)]],
      'the person was asked, and told which host key would receive the answer',
    );
  });

  it("a workspace known_hosts pinning another key for a host the user's own known_hosts knows is refused, naming both files", async () => {
    writeFileSync(ownKnown, `[${real.address}]:${real.port} ${real.hostKey}\n`);
    const before = impostor.attempts.length;
    const p = storing(store, 'typed-by-mistake');
    const err = await rejection(connect(hostile, p));
    assert.equal(err.code, 'ssh-host-key-changed', err.message);
    assert.ok(err.message.includes(hostile.knownHostsFile!), err.message);
    assert.ok(err.message.includes(ownKnown), err.message);
    assert.match(err.message, /may add hosts, never replace a key you trust/);
    assert.deepEqual([p.asked, p.hostKeys], [[], []], 'nothing asked');
    assert.equal(impostor.attempts.length, before, 'the impostor saw no authentication at all');

    // The user's own file and the legit workspace file agree: that still connects, unprompted.
    const ok = storing(store);
    (await connect(legit, ok)).close();
    assert.equal(ok.asked.length, 0);
  });
});
