/**
 * "Not provisioned yet" asked of the hosts (core/tree/unitLook.ts), against in-process `ssh2`
 * servers on loopback: one answers that etcd's unit is absent, one that it is present, one wants
 * a password (the editor's quiet prompts never give one: the host is unread and says why, and no
 * password is sent), and a closed port. Each host is asked one command, and only once it let us in.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lookForUnit, UNIT_LOOK_COMMAND, unitLookOf } from '../../src/core/tree/unitLook';
import { startFakeSsh } from '../../scripts/harness/sshd';
import { cluster, host } from './harness/tlsCluster';

describe("etcd's unit looked for on the member hosts", () => {
  it('asks real SSH servers without prompting: present, absent, a password host and a closed port', async () => {
    const dir = await makeTempDir('k3s-etcd-unit-ssh-');
    mkdirSync(join(dir, 'home', '.ssh'), { recursive: true });
    const asked: string[] = [];
    const answer = (present: boolean) => (command: string) => {
      asked.push(command);
      return { stdout: `k3s-etcd-unit=${present ? 'present' : 'absent'}\n`, code: 0 };
    };
    const servers = [
      await startFakeSsh({ address: '127.0.0.1', open: true, exec: answer(false) }),
      await startFakeSsh({ address: '127.0.0.1', password: 'only-typed', exec: answer(true) }),
      await startFakeSsh({ address: '127.0.0.1', open: true, exec: answer(true) }),
    ];
    try {
      const known = join(dir, 'known_hosts');
      writeFileSync(known, servers.map((f) => `[127.0.0.1]:${f.port} ${f.hostKey}\n`).join(''));
      // A port nothing listens on: a server started and stopped.
      const gone = await startFakeSsh({ address: '127.0.0.1', open: true });
      await gone.stop();
      const hosts = [...servers.map((f) => f.port), gone.port].map((port, i) =>
        host(`edge-${i + 1}`, '127.0.0.1', { ssh: { port }, memberName: `edge-${i + 1}` }),
      );
      const lab = { ...cluster(dir, hosts), knownHostsFile: known };
      const secrets: string[] = [];
      const quiet = {
        env: { home: join(dir, 'home') },
        agentSocket: '',
        timeoutMs: 5000,
        prompts: {
          // The editor's quiet prompts: nothing stored, nothing asked.
          secret: async (req: { prompt: string }) => {
            secrets.push(req.prompt);
            return undefined;
          },
          unknownHostKey: async () => false,
        },
      };
      const reads = await lookForUnit(
        { ...lab, hosts: hosts.slice(0, 2).concat(hosts.slice(3)) },
        quiet,
      );
      assert.deepEqual(
        reads.map((r) => [r.host, r.present]),
        [
          ['edge-1', false],
          ['edge-2', undefined],
          ['edge-4', undefined],
        ],
      );
      assert.match(reads[1]!.why ?? '', /needs a password .* never asks/);
      assert.equal(reads[2]!.why, 'SSH refused the connection');
      // One command, on the one host that let it in (the session prefixes its pid line).
      assert.equal(asked.length, 1);
      assert.ok(asked[0]!.endsWith(`; ${UNIT_LOOK_COMMAND}`), asked[0]);
      assert.equal(
        servers[1]!.attempts.filter((a) => a.secret !== undefined).length,
        0,
        'no password sent',
      );
      // Not provisioned, as far as the readable hosts go; edge-2 and edge-4 unknown.
      const { seen, look } = unitLookOf(reads, new Date());
      assert.equal(seen, false);
      assert.deepEqual(
        look.unread.map((u) => u.host),
        ['edge-2', 'edge-4'],
      );
      // A host with the unit makes it seen.
      const withUnit = await lookForUnit({ ...lab, hosts: [hosts[0]!, hosts[2]!] }, quiet);
      assert.equal(unitLookOf(withUnit, new Date()).seen, true);
    } finally {
      for (const f of servers) await f.stop();
      await removeTempDir(dir);
    }
  });
});
