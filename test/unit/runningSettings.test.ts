/**
 * What each member's etcd really runs with, read on its host (`status --settings`, the health
 * panel's Read Settings from Hosts): the process's environment and arguments parsed as hostile
 * input, mapped back to the inventory's keys under any release's flag names (3.4's
 * --experimental-initial-corrupt-check and 3.6's InitialCorruptCheck gate are one key), and
 * compared with what the inventory renders for the version each member runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_ENTRIES,
  MAX_ENV_BYTES,
  argEntries,
  compareSettings,
  envEntries,
  execStartArgv,
  inventorySettings,
  parseRead,
  readCommand,
  readHostSettings,
  settingsOf,
  type MemberInput,
} from '../../src/core/etcd/runningSettings';
import type { HostTransport } from '../../src/core/plan/runner';
import { cluster, host } from '../fixtures/inventory';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** The read command's output for a host. */
function answer(o: {
  pid?: number;
  environ?: string[];
  cmdline?: string[];
  envfile?: string;
  execstart?: string;
  version?: string;
}): string {
  return [
    `pid=${o.pid ?? 0}`,
    ...(o.pid ? [`environ=${b64((o.environ ?? []).join('\0'))}`] : []),
    ...(o.pid ? [`cmdline=${b64([...(o.cmdline ?? []), ''].join('\0'))}`] : []),
    ...(o.envfile !== undefined ? [`envfile=${b64(o.envfile)}`] : []),
    `execstart=${b64(o.execstart ?? '')}`,
    ...(o.version ? [`version=${o.version}`] : []),
    'end=1',
    '',
  ].join('\n');
}

/** What provision writes: the owned lines every member has. */
const OWNED_ENV = [
  'ETCD_NAME=m-1',
  'ETCD_DATA_DIR=/var/lib/etcd',
  'ETCD_LISTEN_CLIENT_URLS=https://127.0.1.21:2379',
  'ETCD_INITIAL_CLUSTER=m-1=https://127.0.1.21:2380',
  'ETCD_CLIENT_CERT_AUTH=true',
  'ETCD_TRUSTED_CA_FILE=/etc/etcd/pki/ca.pem',
];
const SYSTEMD_ENV = ['LANG=C.UTF-8', 'PATH=/usr/bin', 'INVOCATION_ID=abc', 'ETCDCTL_API=3'];
const exec = (args: string[]) =>
  `{ path=/usr/local/bin/etcd ; argv[]=/usr/local/bin/etcd${args.map((a) => ` ${a}`).join('')} ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }`;

const three = (
  tuning: Partial<ReturnType<typeof cluster>['etcd']['tuning']> = {},
  v = 'v3.6.14',
) => {
  const c = cluster(
    '/tmp/pki',
    [1, 2, 3].map((n) => host(`m-${n}`, `127.0.1.2${n}`)),
  );
  c.name = 'edge';
  c.etcd.version = v;
  c.etcd.tuning = { ...c.etcd.tuning, ...tuning };
  return c;
};
const member = (n: number, out: string): MemberInput => ({
  member: `m-${n}`,
  host: `m-${n}`,
  endpoint: `https://127.0.1.2${n}:2379`,
  read: parseRead(out),
});

describe('a process environment and command line, parsed as hostile input', () => {
  it('takes ETCD_[A-Z0-9_]+ names only: other variables are skipped, malformed etcd ones refused', () => {
    const e = envEntries(
      [
        ...SYSTEMD_ENV,
        'ETCD_QUOTA_BACKEND_BYTES=67108864',
        'ETCD_quota=1',
        'ETCD_BAD-NAME=1',
        'ETCD_NO_VALUE',
        'ETCD_LINE=a\nETCD_SNAPSHOT_COUNT=1',
        `ETCD_LONG=${'x'.repeat(5000)}`,
        'ETCD_QUOTA_BACKEND_BYTES=1',
      ].join('\0'),
      'environ',
    );
    assert.deepEqual(
      e.entries.map((x) => x.text),
      ['ETCD_QUOTA_BACKEND_BYTES=67108864'],
      'the first of a name counts, as getenv',
    );
    assert.equal(e.refused, 5);
  });

  it('bounds the number of entries', () => {
    const many = Array.from({ length: MAX_ENTRIES + 10 }, (_, i) => `ETCD_X${i}=1`).join('\0');
    const e = envEntries(many, 'environ');
    assert.equal(e.entries.length, MAX_ENTRIES);
    assert.equal(e.refused, 10);
  });

  it('an env file: comments, quotes as systemd reads them, the last of a name', () => {
    const e = envEntries(
      "# etcd member\nETCD_NAME=m-1\nETCD_CIPHER_SUITES='TLS_A,TLS_B'\n\nETCD_SNAPSHOT_COUNT=1\r\nETCD_SNAPSHOT_COUNT=5000\n",
      'file',
    );
    assert.deepEqual(
      e.entries.map((x) => x.text),
      ['ETCD_NAME=m-1', 'ETCD_CIPHER_SUITES=TLS_A,TLS_B', 'ETCD_SNAPSHOT_COUNT=5000'],
    );
  });

  it('arguments: --flag=value, --flag value, a bare --flag; the program and junk are not flags', () => {
    const a = argEntries([
      '/usr/local/bin/etcd',
      '--log-level=warn',
      '--snapshot-count',
      '5000',
      '--experimental-initial-corrupt-check',
      '-x=1',
      'stray',
      '--Upper=1',
      '--log-level=debug',
    ]);
    assert.deepEqual(
      a.entries.map((x) => x.text),
      [
        '--snapshot-count=5000',
        '--experimental-initial-corrupt-check',
        '--x=1',
        '--log-level=debug',
      ],
      'the last of a flag counts, as Go',
    );
    assert.equal(a.refused, 2);
  });

  it("systemd's ExecStart property gives the unit's command line", () => {
    assert.deepEqual(execStartArgv(exec(['--log-level=warn'])), [
      '/usr/local/bin/etcd',
      '--log-level=warn',
    ]);
    assert.deepEqual(execStartArgv('junk'), []);
  });
});

describe('mapped back to the inventory keys, under any release name', () => {
  const of = (env: string[], args: string[] = []) =>
    settingsOf(envEntries(env.join('\0'), 'environ'), argEntries(['etcd', ...args]));

  it("a 3.4 name and a 3.6 one are the same key; the tool's own flags are left out", () => {
    const v34 = of([
      ...OWNED_ENV,
      'ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK=true',
      'ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED=true',
      'ETCD_QUOTA_BACKEND_BYTES=4294967296',
    ]);
    const v36 = of([
      ...OWNED_ENV,
      'ETCD_FEATURE_GATES=InitialCorruptCheck=true,CompactHashCheck=true',
      'ETCD_QUOTA_BACKEND_BYTES=4294967296',
    ]);
    assert.deepEqual(v34.values, {
      quotaBackendBytes: '4294967296',
      corruptCheck: 'true',
      compactHashCheck: 'true',
    });
    assert.deepEqual(v36.values, v34.values);
    assert.deepEqual(v34.unknown, []);
  });

  it('renamed extra flags compare under their newest name', () => {
    assert.deepEqual(
      of([], ['--experimental-compaction-batch-limit=500']).values,
      of([], ['--compaction-batch-limit=500']).values,
    );
  });

  it('an argument wins over the same flag in the environment (as in etcd)', () => {
    const s = of(['ETCD_SNAPSHOT_COUNT=100'], ['--snapshot-count=5000']);
    assert.equal(s.values.snapshotCount, '5000');
  });

  it('unknown flags: on the command line they are extraArgs, in the environment they are listed', () => {
    const s = of(
      ['ETCD_UNSAFE_NO_FSYNC=true', 'ETCD_FEATURE_GATES=InitialCorruptCheck=true,Bogus=true'],
      ['--no-such-flag=1', '--log-level=warn'],
    );
    assert.equal(s.values.extraArgs, '--log-level=warn --no-such-flag=1');
    assert.equal(s.values.corruptCheck, 'true');
    assert.deepEqual(s.unknown, ['ETCD_UNSAFE_NO_FSYNC=true', 'ETCD_FEATURE_GATES: Bogus=true']);
  });

  it('a switch set to false is the default; numbers compare as numbers', () => {
    const s = of(['ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK=false', 'ETCD_SNAPSHOT_COUNT=05000']);
    assert.deepEqual(s.values, { snapshotCount: '5000' });
  });

  it("the inventory's tuning rendered for 3.4 and for 3.6 reads back as the same keys", () => {
    const t = {
      corruptCheck: true,
      compactHashCheck: true,
      heartbeatInterval: 500,
      electionTimeout: 5000,
      extraArgs: ['--log-level=warn'],
    };
    const a = inventorySettings(t, 'v3.5.21');
    const b = inventorySettings(t, 'v3.6.14');
    assert.deepEqual(a.values, b.values);
    assert.equal(a.values.extraArgs, '--log-level=warn');
  });
});

describe('one host read', () => {
  it('the running process wins; its files are read too; the version is checked', () => {
    const r = parseRead(
      answer({
        pid: 812,
        environ: [...SYSTEMD_ENV, ...OWNED_ENV, 'ETCD_QUOTA_BACKEND_BYTES=67108864'],
        cmdline: ['/usr/local/bin/etcd', '--log-level=warn'],
        envfile: 'ETCD_QUOTA_BACKEND_BYTES=134217728\n',
        execstart: exec(['--log-level=warn']),
        version: '3.6.14',
      }),
    );
    assert.equal(r.pid, 812);
    assert.deepEqual(r.process?.values, {
      quotaBackendBytes: '67108864',
      extraArgs: '--log-level=warn',
    });
    assert.equal(r.files?.values.quotaBackendBytes, '134217728');
    assert.equal(r.version, '3.6.14');
  });

  it('not running: no process, the files only; no etcd at all: nothing', () => {
    const r = parseRead(answer({ envfile: 'ETCD_SNAPSHOT_COUNT=1\n', execstart: exec([]) }));
    assert.equal(r.process, undefined);
    assert.equal(r.files?.values.snapshotCount, '1');
    assert.deepEqual(parseRead(answer({})), {});
  });

  it('hostile answers: bad base64, a version that is not one, a faked second line', () => {
    const r = parseRead(
      [
        'pid=12',
        'environ=not base64!',
        'cmdline=',
        'version=3.6.14; rm -rf /',
        'pid=13',
        'end=1',
      ].join('\n'),
    );
    assert.equal(r.process, undefined);
    assert.equal(r.version, undefined);
    const big = Buffer.alloc(MAX_ENV_BYTES + 1, 'A').toString('base64');
    const cut = parseRead(
      [
        'pid=9',
        // What `head -c` sends of a longer environment: its bound and one byte.
        `environ=${b64(`ETCD_SNAPSHOT_COUNT=7\0ETCD_QUOTA_BACKEND_BYTES=${'1'.repeat(MAX_ENV_BYTES)}`.slice(0, MAX_ENV_BYTES + 1))}`,
        `cmdline=${b64('etcd\0')}`,
        `envfile=${big}${big}`,
        'end=1',
      ].join('\n'),
    );
    assert.equal(cut.truncated, true, 'an environment past its bound is cut');
    assert.deepEqual(cut.process?.values, { snapshotCount: '7' }, 'its half entry dropped');
    assert.equal(cut.files, undefined, 'a part longer than its bound is not read at all');
  });

  it('the command reads as root through systemd and /proc, every file in base64', async () => {
    const seen: Array<{ cmd: string; sudo?: boolean }> = [];
    const t: HostTransport = {
      label: 'fake',
      async exec(cmd, opts) {
        seen.push({ cmd, ...(opts?.sudo ? { sudo: true } : {}) });
        return {
          code: 0,
          stdout: answer({ pid: 5, environ: ['ETCD_SNAPSHOT_COUNT=5000'], cmdline: ['etcd'] }),
          stderr: '',
        };
      },
      async put() {},
      close() {},
    };
    const c = three({ snapshotCount: 5000 });
    const s = await readHostSettings(c, {
      ssh: {} as never,
      open: async () => t,
    });
    assert.equal(seen.length, 3);
    assert.equal(seen[0]?.sudo, true);
    assert.equal(seen[0]?.cmd, readCommand());
    assert.match(readCommand(), /systemctl show -p MainPID --value etcd/);
    assert.match(readCommand(), /\/proc\/\$pid\/environ" \| base64/);
    assert.deepEqual(s.actions, []);
  });
});

describe('compared with what the inventory renders for each member', () => {
  it('all agree: no action; rows for the keys set anywhere', () => {
    const c = three({ quotaBackendBytes: 64 * 2 ** 20, corruptCheck: true });
    const env = [
      ...OWNED_ENV,
      'ETCD_QUOTA_BACKEND_BYTES=67108864',
      'ETCD_FEATURE_GATES=InitialCorruptCheck=true',
    ];
    const s = compareSettings(
      c,
      [1, 2, 3].map((n) =>
        member(
          n,
          answer({
            pid: n,
            environ: env,
            cmdline: ['etcd'],
            envfile: env.join('\n'),
            version: '3.6.14',
          }),
        ),
      ),
    );
    assert.deepEqual(s.actions, []);
    assert.deepEqual(
      s.rows.map((r) => `${r.key} ${r.inventory} ${r.values['m-2']} ${r.differs.length}`),
      ['quotaBackendBytes 64 MiB 64 MiB 0', 'corruptCheck true true 0'],
    );
  });

  it('a member on 3.4 names the same key its own way and still agrees', () => {
    const c = three({ corruptCheck: true });
    const s = compareSettings(c, [
      member(
        1,
        answer({
          pid: 1,
          environ: ['ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK=true'],
          cmdline: ['etcd'],
          version: '3.4.23',
        }),
      ),
      member(
        2,
        answer({
          pid: 2,
          environ: ['ETCD_FEATURE_GATES=InitialCorruptCheck=true'],
          cmdline: ['etcd'],
          version: '3.6.14',
        }),
      ),
    ]);
    assert.deepEqual(s.actions, []);
  });

  it('differences are marked per member with what to run: provision, or a restart when the files already agree', () => {
    const c = three({ snapshotCount: 5000 });
    const good = ['ETCD_SNAPSHOT_COUNT=5000'];
    const s = compareSettings(c, [
      member(1, answer({ pid: 1, environ: good, cmdline: ['etcd'], envfile: good.join('\n') })),
      // Runs the old value; the files say the old value too: provision.
      member(
        2,
        answer({ pid: 2, environ: [], cmdline: ['etcd', '--log-level=warn'], envfile: '' }),
      ),
      // Runs the old value; the files were rewritten but etcd not restarted.
      member(3, answer({ pid: 3, environ: [], cmdline: ['etcd'], envfile: good.join('\n') })),
    ]);
    const row = (k: string) => s.rows.find((r) => r.key === k);
    assert.deepEqual(row('snapshotCount')?.differs, ['m-2', 'm-3']);
    assert.equal(row('snapshotCount')?.values['m-2'], 'default');
    assert.deepEqual(row('extraArgs')?.differs, ['m-2']);
    assert.equal(row('extraArgs')?.inventory, 'default');
    assert.match(
      s.actions[0] ?? '',
      /^m-2 runs with other settings.*`k3s-etcd provision etcd --cluster edge`/,
    );
    assert.match(s.actions[1] ?? '', /^m-3: the env file and the unit already hold.*restart/);
    assert.equal(s.members.find((m) => m.member === 'm-3')?.stale, true);
    assert.equal(s.members.find((m) => m.member === 'm-1')?.stale, undefined);
  });

  it('a member not running is read from its files and said so; a host not read is named', () => {
    const c = three();
    const s = compareSettings(c, [
      member(1, answer({ envfile: 'ETCD_NAME=m-1\n', execstart: exec([]) })),
      {
        member: 'm-2',
        host: 'm-2',
        endpoint: 'https://127.0.1.22:2379',
        error: 'connection refused',
      },
    ]);
    assert.equal(s.members[0]?.source, 'files');
    assert.equal(s.members[1]?.source, 'unread');
    assert.match(s.actions.join('\n'), /etcd is not running on m-1/);
    assert.match(s.actions.join('\n'), /not read: m-2 \(connection refused\)/);
  });
});
