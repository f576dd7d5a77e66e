/**
 * `certs rotate-ca`, the parts that need no host: rotation.json read as hostile input (every
 * field checked, host names only those of the inventory); the workspace at the start (the new
 * CA and the old one alone in rotation/, ca.pem the bundle, the state written last) and at the
 * end (the old CA and its key in ca-old-<time>/, ca.pem and ca-key.pem the new CA's, the state
 * gone); `certs renew` refused during a rotation; a state whose CA files do not match it is refused; phases asked out of turn refused;
 * an encrypted ca-key.pem: its passphrase asked (the CLI's --ca-passphrase-file, else refused
 * without a terminal), and the new CA's key written encrypted with it, through phase 3.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cluster, host } from '../fixtures/inventory';
import { createCa } from '../../src/core/pki/issue';
import { parseCertificate } from '../../src/core/pki/inspect';
import { encryptPrivateKeyPem, isEncryptedPem, loadPrivateKey } from '../../src/core/pki/keys';
import {
  generateCertificateSet,
  importCa,
  loadIssuer,
  reissueMember,
} from '../../src/core/pki/set';
import { planRenew } from '../../src/core/renew/run';
import { planRotate } from '../../src/core/rotate/run';
import {
  beginRotation,
  finishRotation,
  newCaKeyPem,
  newCaSigningKey,
  parseRotationState,
  readRotation,
  type RotationState,
} from '../../src/core/rotate/state';
import type { Cluster } from '../../src/core/inventory/types';
import { runCli } from '../fixtures/cli';

const FP = (b: string) => Array.from({ length: 32 }, () => b).join(':');
const NAMES = new Set(['h1', 'h2']);
const good = {
  version: 1,
  phase: 2,
  oldCa: FP('AA'),
  newCa: FP('BB'),
  members: ['h1'],
  k3sServers: [],
  startedAt: '2026-03-01T10:00:00.000Z',
};

describe('certs rotate-ca: rotation.json as hostile input', () => {
  it('takes a well-formed state', () => {
    const r = parseRotationState(JSON.stringify(good), NAMES);
    assert.ok(r.ok);
    assert.equal(r.state.phase, 2);
    assert.deepEqual(r.state.members, ['h1']);
  });
  const bad: Array<[string, unknown, RegExp]> = [
    ['not JSON', 'nope', /not JSON/],
    ['an array', [], /not an object/],
    ['another version', { ...good, version: 2 }, /version/],
    ['phase 4', { ...good, phase: 4 }, /phase/],
    ['phase as text', { ...good, phase: '2' }, /phase/],
    ['a fingerprint with a newline', { ...good, oldCa: `${FP('AA')}\n` }, /oldCa/],
    ['the same CA twice', { ...good, newCa: FP('AA') }, /same/],
    ['a host not in the inventory', { ...good, members: ['h9'] }, /h9, which is not a host/],
    ['a path as a host', { ...good, k3sServers: ['../x'] }, /not a host name/],
    ['members not a list', { ...good, members: 'h1' }, /members/],
    ['no start time', { ...good, startedAt: 'yesterday' }, /startedAt/],
  ];
  for (const [what, value, why] of bad)
    it(`refuses ${what}`, () => {
      const r = parseRotationState(
        typeof value === 'string' ? value : JSON.stringify(value),
        NAMES,
      );
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.problem, why);
    });
  it('refuses a huge file', () => {
    assert.equal(parseRotationState(' '.repeat(70_000), NAMES).ok, false);
  });
});

describe('certs rotate-ca: the workspace', () => {
  let dir = '';
  let c: Cluster;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-rotate-unit-'));
    c = cluster(join(dir, 'pki'), [
      host('h1', '127.0.0.1', { memberName: 'm-1' }),
      host('h2', '127.0.0.2', { memberName: 'm-2' }),
    ]);
    await generateCertificateSet(c);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('phase 2 or 3 without a rotation under way is refused before anything is read from a host', async () => {
    await assert.rejects(
      planRotate(c, { phase: 3, ssh: {} as never }),
      /No CA rotation of .* is under way, so phase 3 cannot run: start with phase 1/,
    );
  });

  it('a cluster whose client TLS files the inventory names is refused (the rotation keeps the admin certificate in step)', async () => {
    const tls = { caFile: '/x/ca.pem', certFile: '/x/c.pem', keyFile: '/x/k.pem' };
    await assert.rejects(
      planRotate({ ...c, etcd: { ...c.etcd, tls } }, { ssh: {} as never }),
      /Not rotated: the inventory names its own client TLS files \(etcd\.tls\).*Nothing was changed/,
    );
  });

  it('begins with the bundle as ca.pem and the new CA in rotation/; ends with the old CA kept aside', async () => {
    const pki = c.pki.dir;
    const oldCa = await readFile(join(pki, 'ca.pem'), 'utf8');
    const oldKey = await readFile(join(pki, 'ca-key.pem'), 'utf8');
    const v = {
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    };
    const next = await createCa('new CA', 'ecdsa-p256', v);
    const state: RotationState = {
      version: 1,
      phase: 1,
      oldCa: parseCertificate(oldCa).fingerprint256,
      newCa: parseCertificate(next.certPem).fingerprint256,
      members: [],
      k3sServers: [],
      startedAt: new Date().toISOString(),
    };
    await beginRotation(c, oldCa, next, state);
    const bundle = await readFile(join(pki, 'ca.pem'), 'utf8');
    assert.equal((bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    assert.equal((await stat(join(pki, 'rotation'))).mode & 0o777, 0o700);
    assert.equal((await stat(join(pki, 'rotation/ca-key.pem'))).mode & 0o777, 0o600);
    const rot = await readRotation(c);
    assert.equal(rot?.state.phase, 1);
    assert.equal(rot?.newCa.fingerprint256, state.newCa);

    // `certs renew` during the rotation would re-issue under the old CA: refused, saying why.
    await assert.rejects(
      planRenew(c, { ssh: { knownHostsFile: '/nonexistent' } as never }),
      /a CA rotation of .* is under way .*Go on with `k3s-etcd certs rotate-ca`/,
    );

    // So are `certs generate`, `certs reissue` and `certs import-ca`: nothing written.
    const before = await readFile(join(pki, 'ca.pem'), 'utf8');
    const member = c.hosts[0]!.memberName;
    await assert.rejects(
      generateCertificateSet(c),
      /No certificate written: a CA rotation of .* is under way .*certs rotate-ca/,
    );
    await assert.rejects(reissueMember(c, member), /No certificate written: a CA rotation/);
    await assert.rejects(
      importCa(c, join(pki, 'rotation/ca.pem'), join(pki, 'rotation/ca-key.pem')),
      /No CA imported: a CA rotation/,
    );
    assert.equal(await readFile(join(pki, 'ca.pem'), 'utf8'), before);

    // A state whose new CA file is another certificate is refused, in words that say where to look.
    const saved = await readFile(join(pki, 'rotation/ca.pem'), 'utf8');
    await writeFile(join(pki, 'rotation/ca.pem'), oldCa);
    await assert.rejects(readRotation(c), /rotation\/ca\.pem is not the CA rotation\.json names/);
    await writeFile(join(pki, 'rotation/ca.pem'), saved);

    const folder = await finishRotation(c, new Date('2026-03-01T10:00:00Z'));
    assert.equal(folder, 'ca-old-20260301T100000Z');
    assert.equal(await readFile(join(pki, folder, 'ca.pem'), 'utf8'), oldCa);
    assert.equal(await readFile(join(pki, folder, 'ca-key.pem'), 'utf8'), oldKey);
    assert.equal(await readFile(join(pki, 'ca.pem'), 'utf8'), next.certPem);
    assert.equal(await readFile(join(pki, 'ca-key.pem'), 'utf8'), next.keyPem);
    assert.deepEqual(
      (await readdir(pki)).filter((n) => n.startsWith('rotation')),
      [],
    );
    assert.equal(await readRotation(c), undefined);
  });
});

describe('certs rotate-ca: an encrypted CA key stays encrypted', () => {
  const PASS = 'correct horse battery';
  let dir = '';
  let c: Cluster;
  /** Answers the passphrase questions in turn, recording each (label, retry). */
  const answering = (...answers: Array<string | undefined>) => {
    const asked: Array<[string, boolean]> = [];
    return {
      asked,
      pki: {
        askPassphrase: async (label: string, retry: boolean) => {
          asked.push([label, retry]);
          return answers.shift();
        },
      },
    };
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-rotate-enc-'));
    // Nothing listens on these addresses: the plan is refused after it is made, nothing deployed.
    c = cluster(join(dir, 'pki'), [
      host('h1', '127.77.0.1', { memberName: 'm-1' }),
      host('h2', '127.77.0.2', { memberName: 'm-2' }),
    ]);
    await generateCertificateSet(c);
    // As `certs import-ca` keeps a CA key someone encrypted.
    const key = join(c.pki.dir, 'ca-key.pem');
    await writeFile(key, encryptPrivateKeyPem(await readFile(key, 'utf8'), PASS), { mode: 0o600 });
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('an unencrypted CA key: the new one is written as it is, no passphrase asked', async () => {
    const plain = await mkdtemp(join(tmpdir(), 'k3s-etcd-rotate-plain-'));
    try {
      const p = cluster(join(plain, 'pki'), [host('h1', '127.77.0.1', { memberName: 'm-1' })]);
      await generateCertificateSet(p);
      const { asked, pki } = answering(PASS);
      const made = await createCa('new', 'ecdsa-p256', {
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 86_400_000),
      });
      assert.equal(await newCaKeyPem(p, made.keyPem, pki), made.keyPem);
      assert.deepEqual(asked, []);
    } finally {
      await rm(plain, { recursive: true, force: true });
    }
  });

  it('phase 1 asks the passphrase of ca-key.pem (again when wrong) and makes the new CA key encrypted with it; without a way to ask it is refused', async () => {
    await assert.rejects(
      planRotate(c, { ssh: { knownHostsFile: '/nonexistent' } as never }),
      /ca-key\.pem is encrypted: its passphrase is needed/,
    );
    const { asked, pki } = answering('wrong', PASS);
    const plan = await planRotate(c, { ssh: { knownHostsFile: '/nonexistent' } as never, pki });
    assert.deepEqual(asked, [
      ['ca-key.pem', false],
      ['ca-key.pem', true],
    ]);
    const keyPem = plan.newCaPair!.keyPem;
    assert.ok(isEncryptedPem(keyPem), keyPem.split('\n')[0]);
    assert.doesNotMatch(keyPem, /BEGIN PRIVATE KEY/);
    await assert.rejects(loadPrivateKey(keyPem, 'k', 'wrong'), /wrong passphrase/);
    await loadPrivateKey(keyPem, 'k', PASS);

    // What the run writes first (the plan is refused here: no member answers).
    assert.match(plan.refusal ?? '', /no member of edge-t answered/);
    await beginRotation(c, plan.oldCaPem, plan.newCaPair!, plan.state);
    const onDisk = await readFile(join(c.pki.dir, 'rotation/ca-key.pem'), 'utf8');
    assert.ok(isEncryptedPem(onDisk));
    const rot = (await readRotation(c))!;
    // Phase 2 signs with it: the same passphrase asked, under the new key's name.
    await assert.rejects(newCaSigningKey(c, rot.newCa), /is encrypted: its passphrase is needed/);
    const again = answering(PASS);
    await newCaSigningKey(c, rot.newCa, again.pki);
    assert.match(
      again.asked[0]![0],
      /^rotation\/ca-key\.pem \(the new CA's key, encrypted with the passphrase of ca-key\.pem\)$/,
    );

    // After phase 3 the new CA is the CA, its key still encrypted.
    const folder = await finishRotation(c, new Date('2026-03-01T10:00:00Z'));
    assert.ok(isEncryptedPem(await readFile(join(c.pki.dir, 'ca-key.pem'), 'utf8')));
    assert.ok(isEncryptedPem(await readFile(join(c.pki.dir, folder, 'ca-key.pem'), 'utf8')));
    await assert.rejects(loadIssuer(c), /ca-key\.pem is encrypted/);
    const issuer = await loadIssuer(c, answering(PASS).pki);
    assert.equal(issuer.ca.fingerprint256, rot.newCa.fingerprint256);
  });

  it('the CLI takes --ca-passphrase-file for rotate-ca, and without it (no terminal) says to pass it', async () => {
    const ws = await mkdtemp(join(tmpdir(), 'k3s-etcd-rotate-cli-'));
    try {
      await writeFile(
        join(ws, 'k3s-etcd.yaml'),
        [
          'version: 1',
          'clusters:',
          '  - name: rot',
          '    pki: { dir: pki }',
          '    hosts:',
          '      - { name: h1, address: 127.77.0.1, roles: [etcd] }',
          '',
        ].join('\n'),
      );
      assert.equal((await runCli(['certs', 'generate', '--yes'], { cwd: ws })).code, 0);
      const key = join(ws, 'pki', 'ca-key.pem');
      await writeFile(key, encryptPrivateKeyPem(await readFile(key, 'utf8'), PASS));
      const none = await runCli(['certs', 'rotate-ca', '--dry-run'], { cwd: ws });
      assert.match(none.err, /ca-key\.pem is encrypted: pass --ca-passphrase-file FILE/);
      await writeFile(join(ws, 'wrong'), 'nope\n');
      const wrong = await runCli(
        ['certs', 'rotate-ca', '--dry-run', '--ca-passphrase-file', 'wrong'],
        { cwd: ws },
      );
      // As every command that reads the CA key: a file is read once, a wrong passphrase stops.
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.err, /Passphrase entry cancelled/);
      await writeFile(join(ws, 'pass'), `${PASS}\n`);
      const given = await runCli(
        ['certs', 'rotate-ca', '--dry-run', '--ca-passphrase-file', 'pass'],
        { cwd: ws },
      );
      // The plan is made (and refused: nothing runs there); the dry run writes nothing.
      assert.match(given.out, /CA rotation of rot, phase 1 of 3/);
      assert.match(
        given.out,
        /new CA: .*\(made now; .*; its key encrypted with ca-key\.pem's passphrase\)/,
      );
      assert.match(given.out, /refused: no member of rot answered/);
      assert.deepEqual(
        (await readdir(join(ws, 'pki'))).filter((n) => n.startsWith('rotation')),
        [],
      );
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  });
});
