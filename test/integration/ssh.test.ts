/**
 * The SSH transport against real OpenSSH servers on loopback: key, agent and encrypted-key
 * authentication, the unknown-host prompt (and real `ssh` accepting what we recorded), a
 * changed host key refused, a jump host, SFTP uploads with owner and mode, cancel.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isCancelled, K3sEtcdError } from '../../src/core/errors';
import { connectSsh } from '../../src/core/ssh/transport';
import { type SecretRequest, type SshPrompts, type UnknownHostKey } from '../../src/core/ssh/types';
import { resolveTarget, type SshTarget } from '../../src/core/ssh/target';
import { makeTempDir, removeTempDir, waitUntil } from '../../scripts/harness/processes';
import {
  makeKey,
  startAgent,
  startSshd,
  type Agent,
  type KeyPair,
  type Sshd,
} from '../../scripts/harness/sshd';
import { cluster, host } from './harness/tlsCluster';

interface Recorder extends SshPrompts {
  asked: SecretRequest[];
  hostKeys: UnknownHostKey[];
  results: { id: string; ok: boolean }[];
}

function prompts(
  answers: Partial<Record<SecretRequest['kind'], string[]>> = {},
  acceptHost = false,
): Recorder {
  const r: Recorder = {
    asked: [],
    hostKeys: [],
    results: [],
    secret: async (req) => {
      r.asked.push(req);
      return answers[req.kind]?.shift();
    },
    secretResult: (req, ok) => {
      r.results.push({ id: req.id, ok });
    },
    unknownHostKey: async (info) => {
      r.hostKeys.push(info);
      return acceptHost;
    },
  };
  return r;
}

function target(sshd: Sshd, knownHosts: string, identity?: string): SshTarget {
  return {
    label: sshd.address,
    hostName: sshd.address,
    port: sshd.port,
    user: 'root',
    identityFiles: identity ? [{ path: identity, explicit: true }] : [],
    jumps: [],
    knownHostsFiles: [knownHosts],
  };
}

async function expectSshError(
  p: Promise<unknown>,
  code: string,
  pattern: RegExp,
): Promise<K3sEtcdError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof K3sEtcdError, `expected K3sEtcdError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('SSH transport against real sshd', () => {
  let dir: string;
  let plain: KeyPair;
  let encrypted: KeyPair;
  let agentKey: KeyPair;
  let stranger: KeyPair;
  let sshd: Sshd;
  let jump: Sshd;
  let agent: Agent;
  let known: string;

  before(async () => {
    dir = await makeTempDir('k3s-etcd-ssh-test-');
    plain = makeKey(dir, 'id_plain');
    encrypted = makeKey(dir, 'id_secret', { passphrase: 'open sesame' });
    agentKey = makeKey(dir, 'id_agent', { type: 'ecdsa' });
    stranger = makeKey(dir, 'id_stranger');
    const keys = [plain.publicLine, encrypted.publicLine, agentKey.publicLine];
    sshd = await startSshd({ address: '127.0.0.51', port: 2201, authorizedKeys: keys });
    jump = await startSshd({ address: '127.0.0.52', port: 2202, authorizedKeys: keys });
    agent = await startAgent([agentKey.file]);
    known = join(dir, 'known_hosts');
    writeFileSync(known, `${sshd.knownHostsLine}\n${jump.knownHostsLine}\n`);
  });
  after(async () => {
    await sshd?.stop();
    await jump?.stop();
    await agent?.stop();
    if (dir) await removeTempDir(dir);
  });

  it('authenticates with a key file and runs commands, exit codes and stderr included', async () => {
    const p = prompts();
    const s = await connectSsh(target(sshd, known, plain.file), { prompts: p, agentSocket: '' });
    try {
      const r = await s.exec('echo out; echo err >&2; exit 3');
      assert.deepEqual([r.code, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
      assert.equal((await s.exec('id -un')).stdout.trim(), 'root');
      assert.equal(p.asked.length, 0, 'nothing asked for an unencrypted key');
    } finally {
      s.close();
    }
  });

  it('authenticates through ssh-agent before any key file', async () => {
    const p = prompts();
    const s = await connectSsh(target(sshd, known, encrypted.file), {
      prompts: p,
      agentSocket: agent.socket,
    });
    try {
      assert.equal((await s.exec('true')).code, 0);
      assert.equal(p.asked.length, 0, 'the agent key was enough: no passphrase asked');
      assert.match(sshd.log(), /Accepted publickey for root .* ECDSA/);
    } finally {
      s.close();
    }
  });

  it("asks an encrypted key's passphrase again after a wrong one, and reports which worked", async () => {
    const p = prompts({ passphrase: ['wrong', 'open sesame'] });
    const s = await connectSsh(target(sshd, known, encrypted.file), {
      prompts: p,
      agentSocket: '',
    });
    s.close();
    assert.deepEqual(
      p.asked.map((a) => [a.kind, a.attempt]),
      [
        ['passphrase', 1],
        ['passphrase', 2],
      ],
    );
    assert.equal(p.asked[0]?.id, `passphrase:${encrypted.file}`);
    assert.deepEqual(p.results, [
      { id: `passphrase:${encrypted.file}`, ok: false },
      { id: `passphrase:${encrypted.file}`, ok: true },
    ]);
  });

  it('says which methods it tried when the server refuses every one', async () => {
    const err = await expectSshError(
      connectSsh(target(sshd, known, stranger.file), { prompts: prompts(), agentSocket: '' }),
      'ssh-auth',
      /Permission denied for root@127\.0\.0\.51:2201\. Tried: .*id_stranger/,
    );
    assert.match(err.message, /server accepts: publickey/);
    await expectSshError(
      connectSsh(target(sshd, known, join(dir, 'no-such-key')), {
        prompts: prompts(),
        agentSocket: '',
      }),
      'ssh-auth',
      /no-such-key \(file not found\)/,
    );
  });

  it('asks about an unknown host key with its SHA256 fingerprint, records it hashed, and real ssh accepts the record', async () => {
    const fresh = join(dir, 'known_fresh');
    const refused = prompts({}, false);
    await expectSshError(
      connectSsh(target(sshd, fresh, plain.file), { prompts: refused, agentSocket: '' }),
      'ssh-host-key-unknown',
      /not known and was not accepted/,
    );
    const expected = execFileSync('ssh-keygen', ['-lf', '-'], { input: sshd.knownHostsLine })
      .toString()
      .split(' ')[1];
    assert.equal(refused.hostKeys[0]?.fingerprint, expected, 'the fingerprint ssh-keygen prints');

    const accepted = prompts({}, true);
    const s = await connectSsh(target(sshd, fresh, plain.file), {
      prompts: accepted,
      agentSocket: '',
    });
    s.close();
    assert.equal(accepted.hostKeys.length, 1);
    const recorded = readFileSync(fresh, 'utf8');
    assert.match(recorded, /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /, 'hashed like HashKnownHosts');
    assert.equal(statSync(fresh).mode & 0o777, 0o600);

    const again = prompts({}, false);
    (
      await connectSsh(target(sshd, fresh, plain.file), { prompts: again, agentSocket: '' })
    ).close();
    assert.equal(again.hostKeys.length, 0, 'asked once only');

    const out = execFileSync('ssh', [
      '-F',
      '/dev/null',
      '-i',
      plain.file,
      '-p',
      String(sshd.port),
      '-o',
      `UserKnownHostsFile=${fresh}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      `root@${sshd.address}`,
      'echo via-openssh',
    ]).toString();
    assert.equal(out.trim(), 'via-openssh');
  });

  it('refuses a changed host key and says how to fix it', async () => {
    const changed = join(dir, 'known_changed');
    const other = makeKey(dir, 'other_host_key');
    const [type, key] = other.publicLine.split(' ');
    writeFileSync(changed, `[${sshd.address}]:${sshd.port} ${type} ${key}\n`);
    const p = prompts({}, true);
    const err = await expectSshError(
      connectSsh(target(sshd, changed, plain.file), { prompts: p, agentSocket: '' }),
      'ssh-host-key-changed',
      /has CHANGED/,
    );
    assert.match(err.message, /ssh-keygen -R '\[127\.0\.0\.51\]:2201' -f /);
    assert.equal(p.hostKeys.length, 0, 'a changed key is never offered for acceptance');
  });

  it('goes through a jump host named by ProxyJump in ~/.ssh/config', async () => {
    const home = join(dir, 'home');
    const cfg = [
      'Host bastion',
      `  HostName ${jump.address}`,
      `  Port ${jump.port}`,
      `  IdentityFile ${plain.file}`,
      'Host edge-behind',
      `  HostName ${sshd.address}`,
      `  Port ${sshd.port}`,
      '  ProxyJump bastion',
      `  IdentityFile ${plain.file}`,
      `  UserKnownHostsFile ${known}`,
      '',
    ].join('\n');
    const c = cluster(dir, [host('edge-behind', '10.99.0.1', { ssh: { alias: 'edge-behind' } })]);
    const t = resolveTarget(c, c.hosts[0]!, { home, sshConfig: cfg });
    assert.deepEqual(
      [t.hostName, t.port, t.jumps.map((j) => `${j.hostName}:${j.port}`), t.knownHostsFiles],
      [sshd.address, sshd.port, [`${jump.address}:${jump.port}`], [known]],
    );
    const s = await connectSsh(t, { prompts: prompts(), agentSocket: '' });
    try {
      assert.equal((await s.exec('echo behind')).stdout, 'behind\n');
    } finally {
      s.close();
    }
    assert.ok(
      jump
        .log()
        .includes(
          `direct_tcpip: originator 127.0.0.1 port 0, target ${sshd.address} port ${sshd.port}`,
        ),
      'the jump host forwarded the connection',
    );
  });

  it('uploads over SFTP to a temp path, then moves the file into place with owner and mode', async () => {
    const s = await connectSsh(target(sshd, known, plain.file), {
      prompts: prompts(),
      agentSocket: '',
    });
    const destDir = join(dir, 'remote');
    try {
      await s.writeFile(join(destDir, 'key.pem'), 'secret\n', {
        mode: 0o600,
        owner: 'root',
        group: 'root',
      });
      await s.writeFile(join(destDir, 'unit'), 'v1\n', { mode: 0o644 });
      await s.writeFile(join(destDir, 'unit'), 'v2\n', { mode: 0o644 });
      assert.equal(readFileSync(join(destDir, 'key.pem'), 'utf8'), 'secret\n');
      assert.equal(statSync(join(destDir, 'key.pem')).mode & 0o777, 0o600);
      assert.equal(readFileSync(join(destDir, 'unit'), 'utf8'), 'v2\n');
      assert.equal(statSync(join(destDir, 'unit')).mode & 0o777, 0o644);
      const leftovers = (
        await s.exec(`ls -a /tmp | grep -c '^\\.k3s-etcd-' || true`)
      ).stdout.trim();
      assert.equal(leftovers, '0', 'no temp file left behind');

      // A folder another user owns, with links planted at the target and at the old staging
      // name: root replaces the target and follows neither link.
      const shared = join(dir, 'etcd-owned');
      const victim = join(dir, 'victim');
      writeFileSync(victim, 'precious\n', { mode: 0o644 });
      mkdirSync(shared, { mode: 0o700 });
      chownSync(shared, 65534, 65534);
      symlinkSync(victim, join(shared, 'member.env'));
      symlinkSync(victim, join(shared, 'member.env.k3s-etcd-new'));
      await s.writeFile(join(shared, 'member.env'), 'ETCD_NAME=m1\n', { mode: 0o600 });
      assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
      assert.equal(statSync(victim).mode & 0o777, 0o644);
      assert.equal(lstatSync(join(shared, 'member.env')).isSymbolicLink(), false);
      assert.equal(readFileSync(join(shared, 'member.env'), 'utf8'), 'ETCD_NAME=m1\n');
      assert.equal(statSync(join(shared, 'member.env')).uid, 0);
      assert.equal(statSync(join(shared, 'member.env')).mode & 0o777, 0o600);
      assert.deepEqual(
        readdirSync(shared).sort(),
        ['member.env', 'member.env.k3s-etcd-new'],
        'no staging folder left behind',
      );
    } finally {
      s.close();
    }
  });

  it('a large upload reports its bytes, stops mid-way on cancel, and the session uploads again after', async () => {
    const s = await connectSsh(target(sshd, known, plain.file), {
      prompts: prompts(),
      agentSocket: '',
    });
    const big = join(dir, 'big.bin');
    writeFileSync(big, Buffer.alloc(48 << 20, 0x5a));
    const dest = join(dir, 'uploaded.bin');
    try {
      const steps: number[] = [];
      await s.put(dest, { localPath: big }, { onBytes: (sent) => steps.push(sent) });
      assert.ok(steps.length > 2, `progress as it goes: ${steps.length} reports`);
      assert.equal(steps.at(-1), 48 << 20, 'up to the whole file');
      assert.equal(statSync(dest).size, 48 << 20);

      const stop = new AbortController();
      const partial = join(dir, 'cancelled.bin');
      let last = 0;
      await assert.rejects(
        s.put(
          partial,
          { localPath: big },
          {
            signal: stop.signal,
            onBytes: (sent) => {
              last = sent;
              if (sent > 4 << 20) stop.abort();
            },
          },
        ),
        (e) => isCancelled(e),
      );
      assert.ok(last < 48 << 20, `stopped before the end (${last} bytes)`);
      // The channel the cancel ended is replaced: the same session uploads again.
      await s.put(join(dir, 'after.bin'), { data: Buffer.from('after\n') });
      assert.equal(readFileSync(join(dir, 'after.bin'), 'utf8'), 'after\n');
    } finally {
      s.close();
    }
  });

  it('cancelling stops the remote command', async () => {
    const s = await connectSsh(target(sshd, known, plain.file), {
      prompts: prompts(),
      agentSocket: '',
    });
    const marker = join(dir, 'still-running');
    try {
      const ac = new AbortController();
      const run = s.exec(`sleep 30; touch ${marker}`, { signal: ac.signal });
      // Only this test's remote shell names the marker (another `sleep 30` on the machine must
      // not count).
      const ours = () => execFileSync('ps', ['-eo', 'args']).toString().includes(marker);
      await waitUntil(async () => ours(), 5000, 'the remote command running');
      ac.abort();
      await assert.rejects(run, (e) => isCancelled(e));
      await waitUntil(async () => !ours(), 5000, 'the remote command gone');
      // And a cancel that comes while the channel is still opening stops it too.
      const early = new AbortController();
      const second = s.exec(`sleep 30; touch ${marker}`, { signal: early.signal });
      early.abort();
      await assert.rejects(second, (e) => isCancelled(e));
      await waitUntil(async () => !ours(), 5000, 'the early-cancelled command gone');
    } finally {
      s.close();
    }
  });

  it('words a refused port, a silent server (timeout) and a name that does not resolve', async () => {
    await expectSshError(
      connectSsh(
        { ...target(sshd, known, plain.file), port: 2299 },
        { prompts: prompts(), agentSocket: '' },
      ),
      'ssh-refused',
      /127\.0\.0\.51:2299 refused the connection/,
    );
    const accepted: Socket[] = [];
    const silent = createServer((sock) => void accepted.push(sock));
    await new Promise<void>((r) => silent.listen(2298, '127.0.0.51', r));
    try {
      await expectSshError(
        connectSsh(
          { ...target(sshd, known, plain.file), port: 2298 },
          { prompts: prompts(), agentSocket: '', timeoutMs: 800 },
        ),
        'ssh-timeout',
        /No answer from root@127\.0\.0\.51:2298 within 1 s/,
      );
    } finally {
      for (const sock of accepted) sock.destroy();
      silent.close();
    }
    await expectSshError(
      connectSsh(
        { ...target(sshd, known, plain.file), hostName: 'edge-9.invalid' },
        { prompts: prompts(), agentSocket: '' },
      ),
      'ssh-dns',
      /Cannot resolve edge-9\.invalid/,
    );
  });
});
