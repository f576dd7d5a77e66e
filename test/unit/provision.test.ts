/**
 * The plan renderer run by a real POSIX shell (dash, as /bin/sh on Debian): a dry run only
 * reads, a run converges, a second run reports every step unchanged, a service restarts only
 * when a step it depends on changed (systemctl stubbed on PATH), a failing guard stops the
 * script with its message. Plus the Remote-SSH host test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMarker, renderScript } from '../../src/core/plan/render';
import { sha256, type HostPlan, type Step } from '../../src/core/plan/steps';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { cluster, host } from '../fixtures/inventory';
import { etcdDefaults } from '../../src/core/inventory/parse';
import {
  MARKER,
  checkFacts,
  envLine,
  markerText,
  parseFacts,
} from '../../src/core/etcd/memberHost';
import {
  dataDirGuards,
  envFile,
  planEtcdMember,
  type MemberPlanInput,
} from '../../src/core/provision/memberPlan';
import { resolveBinaries } from '../../src/core/provision/binaries';
import { liveMemberEntry, purgeCommand, removeMember } from '../../src/core/provision/members';
import { provisionEtcd } from '../../src/core/provision/provision';
import type { SshContext } from '../../src/core/ssh/hostSession';
import type { EtcdMember } from '../../src/core/etcd/members';
import { restoreCommands } from '../../src/core/etcd/snapshotFile';

function run(script: string, env: Record<string, string>) {
  const r = spawnSync('/bin/sh', ['-s'], {
    input: script,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  const lines = r.stdout.split('\n');
  const results = lines
    .map(parseMarker)
    .filter((m) => m?.status)
    .map((m) => `${m!.n}:${m!.status}`);
  return { code: r.status, results, stdout: r.stdout };
}

describe('plans rendered to POSIX sh', () => {
  let dir = '';
  let plan: HostPlan;
  let env: Record<string, string>;
  before(async () => {
    dir = await makeTempDir('k3s-etcd-plan-');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // systemctl stub: records calls; "is-active"/"is-enabled" succeed once started/enabled.
    writeFileSync(
      join(bin, 'systemctl'),
      `#!/bin/sh\necho "$*" >> ${dir}/systemctl.log\ncase "$1" in\n  is-enabled) [ -f ${dir}/enabled ] ;;\n  is-active) [ -f ${dir}/active ] ;;\n  enable) touch ${dir}/enabled ;;\n  start|restart) touch ${dir}/active ;;\nesac\n`,
    );
    chmodSync(join(bin, 'systemctl'), 0o755);
    mkdirSync(join(dir, 'stage'));
    writeFileSync(join(dir, 'stage', 'key.pem'), 'secret key\n');
    const text = 'a=1\nb=2\n';
    const steps: Step[] = [
      { kind: 'guard', id: 'g', title: 'guard', check: 'true', message: '"never"' },
      {
        kind: 'dir',
        id: 'd',
        title: 'a dir',
        path: join(dir, 'etc'),
        mode: 0o750,
        owner: 'root',
        group: 'root',
      },
      {
        kind: 'file',
        id: 'conf',
        title: 'conf',
        path: join(dir, 'etc', 'conf'),
        mode: 0o600,
        owner: 'root',
        group: 'root',
        sha256: sha256(text),
        source: { text },
        backup: true,
      },
      {
        kind: 'file',
        id: 'key',
        title: 'key',
        path: join(dir, 'etc', 'key.pem'),
        mode: 0o600,
        owner: 'root',
        group: 'root',
        sha256: sha256('secret key\n'),
        source: { payload: 'key.pem' },
      },
      {
        kind: 'command',
        id: 'cmd',
        title: 'marker',
        check: `[ -f ${dir}/done ]`,
        run: `touch ${dir}/done`,
      },
      {
        kind: 'service',
        id: 'svc',
        title: 'service',
        unit: 'etcd',
        restartOn: ['conf', 'key'],
        unitFileStep: 'conf',
      },
    ];
    plan = { host: 'h1', title: 'test plan', steps, payloads: [] };
    env = { PATH: `${bin}:${process.env['PATH']}`, STAGE: join(dir, 'stage') };
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  it('a dry run only reads and says what would change', () => {
    const r = run(renderScript(plan), { ...env, DRY_RUN: '1' });
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(r.results, [
      '1:ok',
      '2:would-change',
      '3:would-change',
      '4:would-change',
      '5:would-change',
      '6:would-change',
    ]);
    assert.equal(existsSync(join(dir, 'etc')), false);
    const calls = existsSync(join(dir, 'systemctl.log'))
      ? readFileSync(join(dir, 'systemctl.log'), 'utf8')
      : '';
    assert.doesNotMatch(calls, /enable |start|reload/, 'systemctl only asked');
  });

  it('a run converges with the right modes; the next run changes and restarts nothing', () => {
    const first = run(renderScript(plan), env);
    assert.equal(first.code, 0, first.stdout);
    assert.deepEqual(first.results, [
      '1:ok',
      '2:changed',
      '3:changed',
      '4:changed',
      '5:changed',
      '6:changed',
    ]);
    assert.equal(statSync(join(dir, 'etc')).mode & 0o777, 0o750);
    assert.equal(statSync(join(dir, 'etc', 'key.pem')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, 'etc', 'conf'), 'utf8'), 'a=1\nb=2\n');
    const calls1 = readFileSync(join(dir, 'systemctl.log'), 'utf8');
    assert.match(calls1, /daemon-reload/);
    assert.match(calls1, /start --no-block etcd/);

    const second = run(renderScript(plan), env);
    assert.deepEqual(second.results, [
      '1:ok',
      '2:unchanged',
      '3:unchanged',
      '4:unchanged',
      '5:unchanged',
      '6:unchanged',
    ]);
    const calls2 = readFileSync(join(dir, 'systemctl.log'), 'utf8').slice(calls1.length);
    assert.doesNotMatch(calls2, /restart|start|reload/);
  });

  it('a changed dependency restarts the service and backs the old file up', () => {
    writeFileSync(join(dir, 'etc', 'conf'), 'a=0\n');
    const r = run(renderScript(plan), env);
    assert.deepEqual(r.results, [
      '1:ok',
      '2:unchanged',
      '3:changed',
      '4:unchanged',
      '5:unchanged',
      '6:changed',
    ]);
    assert.match(readFileSync(join(dir, 'systemctl.log'), 'utf8'), /restart etcd/);
    const fs = spawnSync('sh', ['-c', `cat ${dir}/etc/conf.bak.*`], { encoding: 'utf8' });
    assert.equal(fs.stdout, 'a=0\n', 'the replaced file was kept');
  });

  it('a failing guard stops the script with its message', () => {
    const bad: HostPlan = {
      ...plan,
      steps: [
        {
          kind: 'guard',
          id: 'g',
          title: 'port free',
          check: 'false',
          message: '"port 2379 is taken"',
        },
        ...plan.steps,
      ],
    };
    const r = run(renderScript(bad), { ...env, DRY_RUN: '1' });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^<== 1\/7 failed: port 2379 is taken$/m);
    assert.deepEqual(parseMarker('<== 1/7 failed: port 2379 is taken'), {
      n: 1,
      total: 7,
      status: 'failed',
      detail: 'port 2379 is taken',
    });
  });

  it('the script has no bash-isms (checkbashisms-like spot check) and quotes paths', () => {
    const s = renderScript(plan);
    assert.doesNotMatch(s, /\[\[|\bfunction\b|\$\{[A-Za-z_]+\/\/|<<<|\bsource\b/);
    assert.match(s, /^#!\/bin\/sh\n/);
    assert.match(s, /^set -eu$/m);
  });
});

describe('values that reach a root script', () => {
  let dir = '';
  before(async () => {
    dir = await makeTempDir('k3s-etcd-plan-hostile-');
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  it('a line break in the plan title or a step title ends no line: nothing after it runs, in a dry run too', () => {
    const marker = join(dir, 'injected');
    const hostile: HostPlan = {
      host: 'h1',
      title: `restore from 20250101T000000Z\ntouch ${marker}\n.db`,
      steps: [
        {
          kind: 'guard',
          id: 'g',
          title: `check\n<== 1/1 failed: forged\r\ntouch ${marker}`,
          check: 'true',
          message: '"never"',
        },
      ],
      payloads: [],
    };
    const script = renderScript(hostile);
    assert.equal(
      script.split('\n')[1],
      `# restore from 20250101T000000Z\\x0atouch ${marker}\\x0a.db`,
    );
    for (const dryRun of ['1', '0']) {
      const r = run(script, { DRY_RUN: dryRun });
      assert.equal(r.code, 0, r.stdout);
      assert.deepEqual(r.results, ['1:ok'], 'no forged outcome line');
      assert.equal(existsSync(marker), false, 'the injected line did not run');
    }
  });

  it('a message with a line break, an id or payload name that is not a word: refused before any script exists', () => {
    const guard: Step = {
      kind: 'guard',
      id: 'g',
      title: 't',
      check: 'true',
      message: '"a\ntouch /x"',
    };
    const plan = (s: Step): HostPlan => ({ host: 'h', title: 't', steps: [s], payloads: [] });
    assert.throws(
      () => renderScript(plan(guard)),
      /the message "\\"a\\ntouch \/x\\"" cannot go into a script/,
    );
    assert.throws(
      () => renderScript(plan({ ...guard, message: '"ok"', id: 'g; touch /x' })),
      /the step id "g; touch \/x" cannot go into a script/,
    );
    const file: Step = {
      kind: 'file',
      id: 'f',
      title: 'f',
      path: '/x',
      mode: 0o600,
      owner: 'root',
      group: 'root',
      sha256: sha256('x\n'),
      source: { payload: 'a"$(touch /x)"' },
    };
    assert.throws(() => renderScript(plan(file)), /the payload name .* cannot go into a script/);
  });

  it('a symlink planted in a folder another user owns is replaced, never followed: its target keeps its bytes, owner and mode', () => {
    // A folder owned by another user (nobody), as etcd owns its data dir.
    const owned = join(dir, 'data');
    mkdirSync(owned);
    chownSync(owned, 65534, 65534);
    const victim = join(dir, 'victim');
    const victim2 = join(dir, 'victim2');
    writeFileSync(victim, 'root only\n', { mode: 0o600 });
    writeFileSync(victim2, 'root only too\n', { mode: 0o600 });
    const dest = join(owned, '.k3s-etcd-cluster');
    // The file itself and the name the old script staged it under, both pointing at root's files.
    symlinkSync(victim, dest);
    symlinkSync(victim2, `${dest}.k3s-etcd-new`);
    const text = 'cluster=lab\n';
    const put: HostPlan = {
      host: 'h',
      title: 'marker',
      payloads: [],
      steps: [
        {
          kind: 'file',
          id: 'marker',
          title: 'cluster marker',
          path: dest,
          mode: 0o600,
          owner: 'nobody',
          group: String(65534),
          sha256: sha256(text),
          source: { text },
          backup: true,
        },
      ],
    };
    const r = run(renderScript(put), {});
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(r.results, ['1:changed']);
    for (const [f, bytes] of [
      [victim, 'root only\n'],
      [victim2, 'root only too\n'],
    ] as const) {
      assert.equal(readFileSync(f, 'utf8'), bytes, `${f} unchanged`);
      const st = statSync(f);
      assert.deepEqual([st.uid, st.mode & 0o777], [0, 0o600], `${f} still root's, 0600`);
    }
    const st = lstatSync(dest);
    assert.ok(st.isFile(), 'the symlink was replaced by a file');
    assert.deepEqual([st.uid, st.mode & 0o777], [65534, 0o600]);
    assert.equal(readFileSync(dest, 'utf8'), text);
    assert.deepEqual(
      readdirSync(owned).sort(),
      ['.k3s-etcd-cluster', '.k3s-etcd-cluster.k3s-etcd-new'],
      'no work folder left, no backup of a symlink',
    );
  });

  it('a dir step whose path is a symbolic link fails, naming it, and never changes the owner or mode of what it names', () => {
    // root's folder, and a link to it where a plan wants a folder of nobody's (etcd's data dir).
    const target = join(dir, 'root-only');
    mkdirSync(target, { mode: 0o700 });
    const link = join(dir, 'data-link');
    symlinkSync(target, link);
    const plan: HostPlan = {
      host: 'h',
      title: 'data dir',
      payloads: [],
      steps: [
        {
          kind: 'dir',
          id: 'data',
          title: 'data dir',
          path: link,
          mode: 0o755,
          owner: 'nobody',
          group: String(65534),
        },
      ],
    };
    for (const dryRun of ['1', '0']) {
      const r = run(renderScript(plan), { DRY_RUN: dryRun });
      assert.equal(r.code, 1, r.stdout);
      assert.deepEqual(r.results, ['1:failed']);
      assert.match(
        r.stdout,
        /^<== 1\/1 failed: .*\/data-link is a symbolic link: its owner and mode are never set through a link/m,
      );
      const st = statSync(target);
      assert.deepEqual(
        [st.uid, st.gid, st.mode & 0o777],
        [0, 0, 0o700],
        "the target is still root's, 0700",
      );
      assert.ok(lstatSync(link).isSymbolicLink(), 'the link is left as it is');
    }
  });

  it('an mv without -T (BusyBox before 1.35) replaces files only in folders no one but root can change', () => {
    const bin = join(dir, 'old-mv');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'mv'),
      `#!/bin/sh\nfor a in "$@"; do case "$a" in -*T*) echo "mv: invalid option -- 'T'" >&2; exit 1 ;; esac; done\nexec /bin/mv "$@"\n`,
    );
    chmodSync(join(bin, 'mv'), 0o755);
    const env = { PATH: `${bin}:${process.env['PATH']}` };
    const text = 'cluster=lab\n';
    const fileAt = (path: string, owner: string): HostPlan => ({
      host: 'h',
      title: 'marker',
      payloads: [],
      steps: [
        {
          kind: 'file',
          id: 'marker',
          title: 'cluster marker',
          path,
          mode: 0o600,
          owner,
          group: owner === 'root' ? 'root' : String(65534),
          sha256: sha256(text),
          source: { text },
        },
      ],
    });
    // etcd's folder: refused, the link left alone, its target untouched.
    const owned = join(dir, 'data-old-mv');
    mkdirSync(owned);
    chownSync(owned, 65534, 65534);
    const victim = join(dir, 'victim-old-mv');
    mkdirSync(victim);
    symlinkSync(victim, join(owned, 'marker'));
    const refused = run(renderScript(fileAt(join(owned, 'marker'), 'nobody')), env);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stdout, /^<== 1\/1 failed: cannot put .*\/marker in place$/m);
    assert.deepEqual(readdirSync(victim), [], 'nothing moved into the folder the link names');
    // Root's own folder: written.
    const mine = join(dir, 'etc-old-mv');
    mkdirSync(mine, { mode: 0o755 });
    const ok = run(renderScript(fileAt(join(mine, 'marker'), 'root')), env);
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal(readFileSync(join(mine, 'marker'), 'utf8'), text);
  });
});

describe('etcd.dataDir is checked again before any script uses it', () => {
  const base = cluster('/nonexistent/pki', [host('edge-1', '10.0.0.1')]);
  const at = (dataDir: string) => ({ ...base, etcd: { ...base.etcd, dataDir } });
  const refusal =
    /etcd\.dataDir "\/" of cluster edge-t is the root of the file system: .*deleted by member remove --purge-data: set etcd\.dataDir in k3s-etcd\.yaml to a folder of its own/;

  it('provisioning, member remove --purge-data and the restore commands refuse "/" before reaching any host', async () => {
    const facts = parseFacts('machine=x86_64\ninit=systemd\n');
    await assert.rejects(
      planEtcdMember({
        cluster: at('/'),
        host: base.hosts[0]!,
        facts,
        binaries: { kind: 'installed', path: '/usr/bin/etcd' },
        initialCluster: 'edge-1=https://10.0.0.1:2380',
        initialState: 'new',
      }),
      refusal,
    );
    // No SSH context at all: the refusal comes before any connection.
    const ssh = {} as SshContext;
    await assert.rejects(provisionEtcd(at('/'), { dryRun: true, ssh }), refusal);
    await assert.rejects(
      removeMember(at('/'), 'edge-1', { dryRun: false, purgeData: true, ssh }),
      refusal,
    );
    assert.throws(() => restoreCommands(at('/'), '/x/20250101T000000Z.db'), refusal);
    assert.throws(
      () => restoreCommands(at('/var/lib/../etc'), '/x/20250101T000000Z.db'),
      /has a "\." or "\.\." segment/,
    );
  });
});

describe("the data dir on the host: taken only when new, empty, etcd's or marked; deleted only when marked for this cluster", () => {
  const c = cluster('/nonexistent/pki', [host('edge-1', '10.0.0.1')]);
  const other = { ...c, name: 'other' };
  let dir = '';
  before(async () => {
    dir = await makeTempDir('k3s-etcd-datadir-');
  });
  after(async () => {
    await removeTempDir(dir);
  });
  /** A folder under the temp dir with the given entries, owner and marker. */
  const folder = (name: string, opts: { files?: string[]; uid?: number; marker?: string } = {}) => {
    const d = join(dir, name);
    mkdirSync(d);
    for (const f of opts.files ?? []) writeFileSync(join(d, f), 'mine\n');
    if (opts.marker !== undefined) writeFileSync(join(d, MARKER), opts.marker);
    if (opts.uid !== undefined) chownSync(d, opts.uid, opts.uid);
    return d;
  };
  const guards = (data: string) =>
    run(renderScript({ host: 'h', title: 'guards', steps: dataDirGuards(c, data), payloads: [] }), {
      DRY_RUN: '0',
    });
  const etcdUid = Number(spawnSync('id', ['-u', 'etcd'], { encoding: 'utf8' }).stdout.trim());

  it("a new, empty, etcd-owned or marked folder passes; one holding another user's files or a link is refused", () => {
    assert.deepEqual(guards(join(dir, 'absent')).results, ['1:ok', '2:ok']);
    assert.deepEqual(guards(folder('empty')).results, ['1:ok', '2:ok']);
    assert.deepEqual(guards(folder('marked', { files: ['x'], marker: markerText(c) })).results, [
      '1:ok',
      '2:ok',
    ]);
    if (Number.isInteger(etcdUid) && etcdUid > 0)
      assert.deepEqual(guards(folder('etcds', { files: ['x'], uid: etcdUid })).results, [
        '1:ok',
        '2:ok',
      ]);
    // What etcd.dataDir: /home/alice/work (or /root/.ssh, had the schema let it through) is.
    const home = folder('home', { files: ['id_ed25519', '.profile'], uid: 65534 });
    const r = guards(home);
    assert.equal(r.code, 1, r.stdout);
    assert.deepEqual(r.results, ['1:ok', '2:failed']);
    assert.match(
      r.stdout,
      /failed: .*\/home already holds 2 files or folders of nobody, not etcd's, and no \.k3s-etcd-cluster: they would be given to the etcd user\. Set etcd\.dataDir to a new or empty folder/,
    );
    const link = join(dir, 'link');
    symlinkSync(folder('target'), link);
    const l = guards(link);
    assert.deepEqual(l.results, ['1:ok', '2:failed']);
    assert.match(
      l.stdout,
      /failed: .*\/link is a symbolic link: set etcd\.dataDir to the folder itself/,
    );
    // etcd data of another cluster: the first guard, as before.
    const theirs = folder('theirs', { marker: markerText(other) });
    mkdirSync(join(theirs, 'member'));
    assert.deepEqual(guards(theirs).results, ['1:failed']);
  });

  it('--purge-data deletes only a folder whose marker names this cluster', () => {
    const purge = (data: string) =>
      spawnSync('/bin/sh', ['-c', purgeCommand(c, data)], { encoding: 'utf8' });
    assert.equal(purge(join(dir, 'gone')).status, 0, 'nothing there: nothing to do');
    const ours = folder('ours', { files: ['db'], marker: markerText(c) });
    mkdirSync(join(ours, 'member'));
    assert.equal(purge(ours).status, 0);
    assert.equal(existsSync(ours), false, 'the marked data dir is deleted');
    const kept = [
      folder('unmarked', { files: ['id_ed25519'] }),
      folder('other-cluster', { files: ['db'], marker: markerText(other) }),
    ];
    // A marker that is a link to a file with the right text, and a link to a marked folder.
    const linkedMarker = folder('linked-marker', { files: ['db'] });
    writeFileSync(join(dir, 'fake-marker'), markerText(c));
    symlinkSync(join(dir, 'fake-marker'), join(linkedMarker, MARKER));
    const linkToOurs = join(dir, 'link-to-ours');
    symlinkSync(folder('ours-2', { files: ['db'], marker: markerText(c) }), linkToOurs);
    for (const d of [...kept, linkedMarker, linkToOurs]) {
      const r = purge(d);
      assert.equal(r.status, 3, d);
      assert.match(
        r.stderr,
        /was not deleted: it is not a folder whose \.k3s-etcd-cluster names cluster edge-t/,
      );
      assert.ok(lstatSync(d), `${d} is still there`);
    }
    assert.deepEqual(readdirSync(join(dir, 'ours-2')).sort(), ['.k3s-etcd-cluster', 'db']);
    assert.deepEqual(readdirSync(kept[0]!), ['id_ed25519']);
  });
});

describe("remote output is input: etcd's member list and the env file", () => {
  const c = cluster('/nonexistent/pki', [host('edge-1', '10.0.0.1'), host('edge-4', '10.0.0.4')]);
  const input = (initialCluster: string): MemberPlanInput => ({
    cluster: c,
    host: c.hosts[1]!,
    facts: parseFacts('machine=x86_64\ninit=systemd\n'),
    binaries: { kind: 'installed', path: '/usr/bin/etcd' },
    initialCluster,
    initialState: 'existing',
  });

  it('a member name or peer URL with a line break never becomes a line of the env file', () => {
    const ok = envFile(input('edge-1=https://10.0.0.1:2380,edge-4=https://10.0.0.4:2380'));
    assert.match(
      ok,
      /^ETCD_INITIAL_CLUSTER=edge-1=https:\/\/10\.0\.0\.1:2380,edge-4=https:\/\/10\.0\.0\.4:2380$/m,
    );
    // What a member named "x\nETCD_DATA_DIR=/" in etcd's member list would have written.
    assert.throws(
      () => envFile(input('x\nETCD_DATA_DIR=/=https://10.0.0.1:2380')),
      /ETCD_INITIAL_CLUSTER="x\\nETCD_DATA_DIR=\/=https:\/\/10\.0\.0\.1:2380" cannot be written to \/etc\/etcd\/etcd\.env/,
    );
    assert.throws(() => envLine('ETCD_NAME', 'a\rb'), /cannot be written/);
    assert.throws(() => envLine('ETCD_NAME', "it's"), /cannot be written/);
    assert.equal(envLine('ETCD_NAME', 'edge-1'), 'ETCD_NAME=edge-1');
    assert.equal(envLine('ETCD_NAME', 'a b$c'), "ETCD_NAME='a b$c'");
    // Lines kept from the host are whole ETCD_INITIAL_* lines only.
    assert.deepEqual(
      parseFacts('initial=ETCD_INITIAL_CLUSTER_STATE=new\ninitial=ETCD_DATA_DIR=/\ninitial=junk\n')
        .initialLines,
      ['ETCD_INITIAL_CLUSTER_STATE=new'],
    );
  });

  it("etcd's member list: a name or peer URL that is not plain is refused before anything changes", () => {
    const member = (name: string, url: string): EtcdMember =>
      ({
        id: '8e9e05c52164694d',
        name,
        peerUrls: [url],
        clientUrls: [],
        isLearner: false,
      }) as EtcdMember;
    assert.equal(
      liveMemberEntry(c, member('edge-1', 'https://10.0.0.1:2380')),
      'edge-1=https://10.0.0.1:2380',
    );
    assert.equal(
      liveMemberEntry(c, member('e', 'https://[fd00::1]:2380')),
      'e=https://[fd00::1]:2380',
    );
    assert.throws(
      () => liveMemberEntry(c, member('x\nETCD_DATA_DIR=/', 'https://10.0.0.1:2380')),
      /lists member 8e9e05c52164694d, but its name "x\\nETCD_DATA_DIR=\/" is not a member name .*Nothing was changed/,
    );
    for (const url of [
      'https://10.0.0.1:2380`touch /x`',
      'https://10.0.0.1:2380/p',
      'https://a b:1',
      '',
    ])
      assert.throws(
        () => liveMemberEntry(c, member('edge-1', url)),
        /is not https:\/\/address:port/,
        url,
      );
  });
});

describe('host facts and binaries: refusals name the host and say what to do', () => {
  const c = {
    ...cluster('/tmp/pki', [host('edge-1', '10.0.0.1')]),
    etcd: { ...etcdDefaults('t', 'v3.4.23'), install: 'upload' as const, uploadPath: '/usr/bin' },
  };
  const h = c.hosts[0]!;
  it('parses uname, init system, installed etcd and the ETCD_INITIAL_* lines', () => {
    const f = parseFacts(
      'machine=aarch64\ninit=systemd\netcd_path=/usr/local/bin/etcd\netcd_version=3.4.23\nhas_data=1\ninitial=ETCD_INITIAL_CLUSTER_STATE=new\naddresses=10.0.0.1 127.0.0.1 \n',
    );
    assert.deepEqual(f, {
      machine: 'aarch64',
      arch: 'arm64',
      init: 'systemd',
      etcdPath: '/usr/local/bin/etcd',
      etcdVersion: '3.4.23',
      hasData: true,
      initialLines: ['ETCD_INITIAL_CLUSTER_STATE=new'],
      addresses: ['10.0.0.1', '127.0.0.1'],
    });
  });
  it('OpenRC, no systemd and an unknown architecture are refused', () => {
    const base = parseFacts('machine=x86_64\ninit=systemd\n');
    assert.throws(
      () => checkFacts(h, { ...base, init: 'openrc' }),
      /edge-1 runs OpenRC: .*systemd hosts only/,
    );
    assert.throws(() => checkFacts(h, { ...base, init: 'other' }), /edge-1 does not run systemd/);
    assert.throws(
      () => checkFacts(h, parseFacts('machine=mips\ninit=systemd\n')),
      /edge-1 has the architecture "mips", for which etcd publishes no release/,
    );
  });
  it('an uploaded binary for another architecture is refused before anything is sent', async () => {
    // Debian's /usr/bin holds this machine's (amd64) etcd and etcdctl.
    await assert.rejects(
      resolveBinaries(c, h, parseFacts('machine=aarch64\ninit=systemd\n')),
      /\/usr\/bin\/etcd is an amd64 binary but edge-1 is aarch64 \(arm64\)/,
    );
    const ok = await resolveBinaries(c, h, parseFacts('machine=x86_64\ninit=systemd\n'));
    assert.equal(ok.kind, 'binaries');
  });
  it('download: the release URL and its SHA256SUMS for the host architecture', async () => {
    const d = await resolveBinaries(
      { ...c, etcd: { ...c.etcd, install: 'download' } },
      h,
      parseFacts('machine=armv7l\ninit=systemd\n'),
    );
    assert.deepEqual(d, {
      kind: 'download',
      url: 'https://github.com/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-arm.tar.gz',
      sumsUrl: 'https://github.com/etcd-io/etcd/releases/download/v3.4.23/SHA256SUMS',
      file: 'etcd-v3.4.23-linux-arm.tar.gz',
    });
  });
});
