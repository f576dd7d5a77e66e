/**
 * Which backup host takes a backup, and what each one is told: the env file lists every backup
 * host's member (inventory order, checked values), and the hosts' own `sh` (the script's `elect`,
 * run here with etcdctl stood in for) acts on the leader's host, or, when `backup.hosts` leaves
 * the leader out, on the first listed backup host whose member answers, and on no other.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BACKUP_ELECT, BACKUP_SCRIPT } from '../../src/core/backup/hostScript';
import {
  BACKUP_KNOWN_HOSTS,
  BACKUP_SSH_KEY,
  backupEnv,
  backupHostPlan,
  destinationPlan,
  RECEIVER_PATH,
  RECIPIENTS_DIR,
} from '../../src/core/backup/install';
import type { Step } from '../../src/core/plan/steps';
import { shellQuote as q } from '../../src/core/ssh/quote';
import { backupProblems, type RawBackup } from '../../src/core/inventory/backup';
import { parseInventory } from '../../src/core/inventory/parse';
import type { Cluster } from '../../src/core/inventory/types';

const EXAMPLE = join(__dirname, '../../examples/edge-lab/k3s-etcd.yaml');

/** The example (edge-1..3, all etcd) with a backup block holding `lines`. */
function exampleCluster(lines: string[]): Cluster {
  const loaded = exampleLoaded(lines);
  assert.equal(loaded.status, 'ok', JSON.stringify(loaded.problems));
  return (loaded as { inventory: { clusters: Cluster[] } }).inventory.clusters[0]!;
}

function exampleLoaded(lines: string[]) {
  const text = readFileSync(EXAMPLE, 'utf8').replace(
    /^(    pki: .*)$/m,
    [
      '$1',
      '    backup:',
      '      encryption: { recipientsFile: backup-recipients.pem }',
      ...lines.map((l) => `      ${l}`),
    ].join('\n'),
  );
  return parseInventory(text, '/w/k3s-etcd.yaml');
}

const envValue = (env: string, key: string) =>
  /^"?(.*?)"?$/.exec(
    env
      .split('\n')
      .find((l) => l.startsWith(`${key}=`))!
      .slice(key.length + 1),
  )![1];

const URL1 = 'https://127.0.1.21:2379';
const URL2 = 'https://127.0.1.22:2379';
const URL3 = 'https://127.0.1.23:2379';
// Member ids as etcdctl prints them (decimal); 1 is a prefix of 11 and 111 on purpose.
const ID = { 'edge-1': '11', 'edge-2': '111', 'edge-3': '1' } as const;
const MEMBER_LIST = JSON.stringify({
  header: { cluster_id: 99, member_id: 111, raft_term: 4 },
  members: (['edge-1', 'edge-2', 'edge-3'] as const).map((n, i) => ({
    ID: Number(ID[n]),
    name: n,
    peerURLs: [`https://127.0.1.2${i + 1}:2380`],
    clientURLs: [`https://127.0.1.2${i + 1}:2379`],
  })),
});

/**
 * The script's `elect` on `member` with `leader` leading: etcdctl stood in for by a `ctl` that
 * prints MEMBER_LIST (or fails when `list` is false) and answers a health check for `up` only
 * (noting each probe on fd 3: the script sends ctl's stderr away). Returns the verdict and the
 * members it probed, in order.
 */
function elect(opts: {
  member: keyof typeof ID;
  leader: keyof typeof ID | '7';
  members?: string;
  up?: string[];
  list?: boolean;
}): { verdict: string; probed: string[] } {
  const stub = `ctl() {
  ep=\${1#--endpoints=}
  case "$*" in
    *"member list -w json"*) [ "$LIST" = 1 ] || { echo 'context deadline exceeded' >&2; return 1; }; printf '%s\\n' "$ML" ;;
    *"endpoint health"*) echo "probe $ep" >&3; case " $UP " in *" $ep "*) return 0 ;; esac; return 1 ;;
    *) echo "unexpected ctl $*" >&2; return 2 ;;
  esac
}
`;
  const run = spawnSync(
    'sh',
    [
      '-c',
      `${stub}${BACKUP_ELECT}\nexec 3>&2\nelect "$1" "$2"`,
      'sh',
      ID[opts.member],
      opts.leader === '7' ? '7' : ID[opts.leader],
    ],
    {
      encoding: 'utf8',
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        LOCAL: URL2,
        MEMBER: opts.member,
        ML: MEMBER_LIST,
        LIST: opts.list === false ? '0' : '1',
        UP: (opts.up ?? []).join(' '),
        ...(opts.members !== undefined ? { BACKUP_MEMBERS: opts.members } : {}),
      },
    },
  );
  assert.equal(run.status, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /unexpected ctl/);
  return {
    verdict: run.stdout.trim(),
    probed: run.stderr
      .split('\n')
      .filter((l) => l.startsWith('probe '))
      .map((l) => l.slice('probe '.length)),
  };
}

describe('which backup host takes the backup', () => {
  it('the env file lists every backup host member with its client URL, in inventory order', () => {
    const all = exampleCluster([]);
    assert.equal(
      envValue(backupEnv(all, all.hosts[0]!), 'BACKUP_MEMBERS'),
      `edge-1|${URL1} edge-2|${URL2} edge-3|${URL3}`,
    );
    const subset = exampleCluster(['hosts: [edge-3, edge-1]']);
    // The inventory's host order, whatever the order of backup.hosts: every host agrees on it.
    for (const h of [subset.hosts[0]!, subset.hosts[2]!])
      assert.equal(
        envValue(backupEnv(subset, h), 'BACKUP_MEMBERS'),
        `edge-1|${URL1} edge-3|${URL3}`,
      );
    assert.match(BACKUP_SCRIPT, /^verdict=\$\(elect "\$me" "\$leader"\)$/m);
  });

  const subset = `edge-1|${URL1} edge-2|${URL2}`; // backup.hosts: [edge-1, edge-2]

  it("the leader's host acts; another backup host skips when the leader is a backup host", () => {
    assert.deepEqual(elect({ member: 'edge-1', leader: 'edge-1', members: subset }), {
      verdict: 'act',
      probed: [],
    });
    const other = elect({ member: 'edge-2', leader: 'edge-1', members: subset, up: [URL1] });
    assert.equal(
      other.verdict,
      "skip: this host's member does not lead; the leader's host (edge-1) takes the backup",
    );
    assert.deepEqual(other.probed, [], 'no probe: the leader decides');
  });

  it('the leader not a backup host: the first listed backup host acts', () => {
    assert.deepEqual(elect({ member: 'edge-1', leader: 'edge-3', members: subset, up: [] }), {
      verdict: 'act',
      probed: [],
    });
    // The second skips while the first answers...
    assert.deepEqual(
      elect({ member: 'edge-2', leader: 'edge-3', members: subset, up: [URL1, URL2] }),
      {
        verdict:
          'skip: the leader (edge-3) is not a backup host; edge-1, the first backup host whose member answers, takes the backup',
        probed: [URL1],
      },
    );
    // ...and acts when it does not.
    assert.deepEqual(elect({ member: 'edge-2', leader: 'edge-3', members: subset, up: [URL2] }), {
      verdict: 'act',
      probed: [URL1],
    });
    // One backup host (backup.hosts: [edge-2]) with the leader elsewhere: it acts.
    assert.equal(
      elect({ member: 'edge-2', leader: 'edge-1', members: `edge-2|${URL2}` }).verdict,
      'act',
    );
  });

  it('an env file without the list (an older install): only the leader acts', () => {
    assert.equal(
      elect({ member: 'edge-1', leader: 'edge-3' }).verdict,
      "skip: this host's member does not lead; the leader's host takes the backup",
    );
  });

  it('no member list, or a leader not in it: the run fails, it does not guess', () => {
    assert.match(
      elect({ member: 'edge-2', leader: 'edge-3', members: subset, list: false }).verdict,
      /^fail: the member list could not be read from https:\/\/127\.0\.1\.22:2379: context deadline exceeded$/,
    );
    assert.match(
      elect({ member: 'edge-2', leader: '7', members: subset }).verdict,
      /^fail: the leader \(7\) is not in the member list/,
    );
  });
});

describe('a copy off the host goes to another host', () => {
  const ETCD = (['edge-1', 'edge-2', 'edge-3'] as const).map((name) => ({
    name,
    roles: ['etcd' as const],
  }));
  const raw = (
    hosts: string[] | undefined,
    dests: NonNullable<RawBackup['destinations']>,
  ): RawBackup => ({
    encryption: { recipientsFile: 'r.pem' },
    ...(hosts ? { hosts } : {}),
    destinations: dests,
  });
  const S3 = { s3: { endpoint: 'https://s3.example', bucket: 'etcd', credentialsFile: '/etc/s' } };
  const to = (host: string) => ({ host, path: '/var/backups/k3s-etcd' });

  it("a backup host's own address is not among its DEST_HOSTS; the others still copy to it", () => {
    const c = exampleCluster([
      'destinations:',
      '  - { host: edge-3, path: /var/backups/k3s-etcd }',
      '  - { host: edge-1, path: /srv/copies }',
    ]);
    const dests = (name: string) =>
      envValue(
        backupEnv(
          c,
          c.hosts.find((h) => h.name === name)!,
        ),
        'DEST_HOSTS',
      );
    assert.equal(dests('edge-1'), 'root@127.0.1.23:22:/var/backups/k3s-etcd');
    assert.equal(
      dests('edge-2'),
      'root@127.0.1.23:22:/var/backups/k3s-etcd root@127.0.1.21:22:/srv/copies',
    );
    assert.equal(dests('edge-3'), 'root@127.0.1.21:22:/srv/copies');
  });

  it('refused when some backup host would have only itself as destination', () => {
    const messages = (r: RawBackup) =>
      backupProblems(r, ETCD).map((p) => `${p.severity} ${p.path.join('.')}: ${p.message}`);
    // Every etcd host takes backups; edge-3's only destination is edge-3.
    assert.deepEqual(messages(raw(undefined, [to('edge-3')])), [
      'error destinations.0.host: "edge-3" is a backup host too and this is its only destination: the backups it takes would have no copy off the host (add another host or an S3 destination)',
    ]);
    assert.match(
      messages(raw(['edge-1', 'edge-2'], [to('edge-2')])).join('\n'),
      /^error destinations\.0\.host: "edge-2" is a backup host too and this is its only destination/,
    );
    // The one backup host as a destination: as before.
    assert.deepEqual(messages(raw(['edge-1'], [to('edge-1'), S3])), [
      'error destinations.0.host: "edge-1" takes the backups: a copy on the same host is no copy off the host',
    ]);
    // Another place for the host's own backups: fine.
    assert.deepEqual(messages(raw(undefined, [to('edge-3'), S3])), []);
    assert.deepEqual(messages(raw(['edge-1', 'edge-2'], [to('edge-2'), to('edge-3')])), []);
    assert.deepEqual(messages(raw(['edge-1', 'edge-2'], [to('edge-3')])), []);
    // And through the parser, at the destination's line.
    const loaded = exampleLoaded([
      'destinations:',
      '  - { host: edge-3, path: /var/backups/k3s-etcd }',
    ]);
    assert.equal(loaded.status, 'invalid');
    assert.match(
      JSON.stringify(loaded.problems),
      /clusters\[0\]\.backup\.destinations\[0\]\.host.*is a backup host too and this is its only destination/,
    );
  });
});

describe('backup install --remove', () => {
  const c = exampleCluster([
    'hosts: [edge-1]',
    'destinations:',
    '  - { host: edge-3, path: /var/backups/k3s-etcd }',
  ]);
  const host = c.hosts[0]!;
  const recipient = {
    pem: '-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n',
    fingerprint: 'f'.repeat(64),
    bits: 4096,
  };
  const command = (steps: Step[], id: string) => {
    const s = steps.find((x) => x.id === id);
    assert.ok(s && s.kind === 'command', id);
    return s;
  };

  it('takes away every file the install puts on a backup host; the backups stay', () => {
    const install = backupHostPlan(c, host, { recipients: [recipient], knownHosts: 'x\n' });
    const written = install.steps.flatMap((s) => (s.kind === 'file' ? [s.path] : []));
    // What the install makes beside its file steps: the copies' key pair (ssh-keygen on the host).
    assert.match(command(install.steps, 'backup_ssh_key').run, new RegExp(`-f ${BACKUP_SSH_KEY}$`));
    const made = [...written, BACKUP_SSH_KEY, `${BACKUP_SSH_KEY}.pub`];
    assert.ok(
      made.includes(BACKUP_KNOWN_HOSTS) && made.some((p) => p.startsWith(`${RECIPIENTS_DIR}/`)),
    );
    const remove = command(
      backupHostPlan(c, host, { recipients: [], knownHosts: '', remove: true }).steps,
      'remove_backup',
    );
    for (const p of made) {
      const gone = p.startsWith(`${RECIPIENTS_DIR}/`) ? RECIPIENTS_DIR : p;
      assert.ok(remove.check.includes(`[ ! -e ${q(gone)} ]`), `checked gone: ${gone}`);
      assert.ok(remove.run.split(/\s/).includes(q(gone)), `removed: ${gone}`);
    }
    assert.ok(remove.run.split('\n').includes(`rm -rf ${q(RECIPIENTS_DIR)}`), remove.run);
    assert.doesNotMatch(remove.run, /backups/, 'the backups stay');
  });

  it('takes the receiver away on a destination once no authorized key runs it', () => {
    const dest = { host: c.hosts[2]!, path: '/var/backups/k3s-etcd', user: 'root' };
    const install = destinationPlan(c, dest, []);
    assert.ok(install.steps.some((s) => s.kind === 'file' && s.path === RECEIVER_PATH));
    const steps = destinationPlan(c, dest, [], true).steps;
    assert.deepEqual(
      steps.map((s) => s.id),
      ['unauthorize', 'receiver_gone'],
    );
    const gone = command(steps, 'receiver_gone');
    assert.equal(gone.run, `rm -f ${q(RECEIVER_PATH)}`);
    // Whether a key still runs it, over a passwd of two users (getent stood in for).
    const inUse = gone.check.slice(gone.check.indexOf('|| { ') + 5, -3);
    const dir = mkdtempSync(join(tmpdir(), 'k3s-etcd-receiver-'));
    try {
      for (const u of ['root', 'bob']) mkdirSync(join(dir, u, '.ssh'), { recursive: true });
      writeFileSync(
        join(dir, 'passwd'),
        `root:x:0:0::${dir}/root:/bin/sh\nbob:x:1000:1000::${dir}/bob:/bin/sh\n`,
      );
      const line = (path: string) => `restrict,command="${RECEIVER_PATH} ${path}" ssh-ed25519 AAAA`;
      const used = (root: string[], bob: string[]) => {
        writeFileSync(join(dir, 'root', '.ssh', 'authorized_keys'), root.join('\n') + '\n');
        writeFileSync(join(dir, 'bob', '.ssh', 'authorized_keys'), bob.join('\n') + '\n');
        const r = spawnSync(
          'sh',
          [
            '-c',
            `getent() { if [ -n "\${2:-}" ]; then grep "^$2:" "$D/passwd"; else cat "$D/passwd"; fi; }\n${inUse}`,
          ],
          { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', D: dir }, encoding: 'utf8' },
        );
        return r.status === 0;
      };
      assert.equal(
        used([line(dest.path), 'ssh-ed25519 BBBB me'], []),
        false,
        "only this folder's line",
      );
      assert.equal(used([line('/srv/other')], []), true, 'another folder of root');
      assert.equal(used([], [line(dest.path)]), true, "another user's key");
      assert.equal(
        used(['ssh-ed25519 BBBB me'], ['ssh-ed25519 CCCC bob']),
        false,
        'no line at all',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.match(gone.check, new RegExp(`^\\[ ! -e ${q(RECEIVER_PATH)} \\] \\|\\| `));
  });
});
