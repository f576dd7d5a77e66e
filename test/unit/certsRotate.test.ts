/**
 * `certs rotate-ca`, the parts that need no host: rotation.json read as hostile input (every
 * field checked, host names only those of the inventory); the workspace at the start (the new
 * CA and the old one alone in rotation/, ca.pem the bundle, the state written last) and at the
 * end (the old CA and its key in ca-old-<time>/, ca.pem and ca-key.pem the new CA's, the state
 * gone); `certs renew` refused during a rotation; a state whose CA files do not match it is refused; phases asked out of turn refused.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cluster, host } from '../fixtures/inventory';
import { createCa } from '../../src/core/pki/issue';
import { parseCertificate } from '../../src/core/pki/inspect';
import { generateCertificateSet, importCa, reissueMember } from '../../src/core/pki/set';
import { planRenew } from '../../src/core/renew/run';
import { planRotate } from '../../src/core/rotate/run';
import {
  beginRotation,
  finishRotation,
  parseRotationState,
  readRotation,
  type RotationState,
} from '../../src/core/rotate/state';
import type { Cluster } from '../../src/core/inventory/types';

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
