/**
 * The certificate set of a cluster, in its pki folder:
 *   ca.pem, ca-key.pem                     the CA (created once, never silently replaced)
 *   <member>/server.pem, server-key.pem    ServerAuth + ClientAuth, SANs of the member
 *   <member>/peer.pem, peer-key.pem        ServerAuth + ClientAuth, same SANs
 *   client/k3s.pem, client/k3s-key.pem     ClientAuth, CN k3s (K3s's datastore connection)
 *   client/admin.pem, client/admin-key.pem ClientAuth, CN admin (operator and this extension)
 *   client/monitoring.pem, ...-key.pem     ClientAuth, CN monitoring (issued by `monitoring export`)
 *   index.json                             manifest: every file, subject, SANs, expiry, SHA-256
 * Generation plans first (create / keep / replace, with the reason), asks before replacing
 * anything, then writes everything at once.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { CancelledError, throwIfAborted, PkiError } from '../errors';
import { isIpOrHostname } from '../inventory/addressFormat';
import type { Cluster, Host, KeyAlgorithm } from '../inventory/types';
import { etcdHosts } from '../inventory/select';
import {
  certInfo,
  expiryOf,
  keyMatches,
  parseCertificate,
  sansOf,
  EKU_NAMES,
  type CertInfo,
} from './inspect';
import { createCa, issueLeaf, type ExtendedUsage, type Issuer, type Validity } from './issue';
import { isEncryptedPem, loadPrivateKey, parseAlgorithm, type LoadedKey } from './keys';
import {
  exists,
  readIndex,
  rel,
  writeAtomically,
  writeIndex,
  type FileToWrite,
  type KnownFile,
  type PkiIndex,
} from './store';

const DAY = 86_400_000;
/** Back-date notBefore a little, so hosts whose clocks lag accept a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;

export const CA_FILES = { cert: 'ca.pem', key: 'ca-key.pem' } as const;
const CLIENT_DIR = 'client';

export interface PkiOptions {
  now?: Date;
  /** The setting's algorithm, used when the inventory does not choose one. */
  defaultAlgorithm?: string;
  /** Asked when the CA key is encrypted; resolve undefined to cancel. */
  askPassphrase?: (label: string, retry: boolean) => Promise<string | undefined>;
  /** Asked before existing files are replaced; gets the file paths and why. */
  confirmReplace?: (files: string[], reasons: string[]) => Promise<boolean>;
  signal?: AbortSignal;
}

export interface LeafSpec {
  file: KnownFile;
  cn: string;
  sans: string[];
  usages: ExtendedUsage[];
}

export type LeafAction = 'create' | 'keep' | 'replace';

export interface LeafPlan {
  spec: LeafSpec;
  action: LeafAction;
  reason?: string;
}

export interface SetPlan {
  cluster: string;
  dir: string;
  algorithm: KeyAlgorithm;
  caAction: 'create' | 'reuse';
  leaves: LeafPlan[];
  warnings: string[];
}

export interface WriteResult {
  plan: SetPlan;
  /** Paths written, relative to the pki folder. */
  written: string[];
  index: PkiIndex;
}

export function effectiveAlgorithm(cluster: Cluster, defaultAlgorithm?: string): KeyAlgorithm {
  return cluster.pki.algorithm ?? parseAlgorithm(defaultAlgorithm ?? 'ecdsa-p256');
}

/** SANs of a member: its address, host name, member name, extra SANs, 127.0.0.1, localhost. */
export function memberSans(host: Host, extra: readonly string[] = []): string[] {
  const all = [
    host.address,
    host.name,
    host.memberName,
    ...host.sans,
    ...extra,
    '127.0.0.1',
    'localhost',
  ];
  for (const s of all) {
    if (!isIpOrHostname(s))
      throw new PkiError(
        'invalid-san',
        `"${s}" is not an IP address or hostname, so it cannot be a certificate SAN`,
      );
  }
  return [...new Set(all.map((s) => s.toLowerCase()))];
}

function memberFiles(host: Host): { server: KnownFile; peer: KnownFile } {
  const m = host.memberName;
  return {
    server: {
      path: `${m}/server.pem`,
      keyPath: `${m}/server-key.pem`,
      kind: 'server',
      member: m,
      name: `${m} server`,
    },
    peer: {
      path: `${m}/peer.pem`,
      keyPath: `${m}/peer-key.pem`,
      kind: 'peer',
      member: m,
      name: `${m} peer`,
    },
  };
}

export const CA_KNOWN: KnownFile = {
  path: CA_FILES.cert,
  keyPath: CA_FILES.key,
  kind: 'ca',
  name: 'CA',
};

/** Every leaf the inventory calls for. */
export function desiredLeaves(
  cluster: Cluster,
  overrides: Map<string, string[]> = new Map(),
): LeafSpec[] {
  const specs: LeafSpec[] = [];
  for (const host of etcdHosts(cluster)) {
    if (host.memberName === CLIENT_DIR) {
      throw new PkiError(
        'name-clash',
        `the etcd member name "${CLIENT_DIR}" clashes with the client certificate folder: set memberName for host ${host.name}`,
      );
    }
    const sans = memberSans(host, overrides.get(host.memberName));
    const files = memberFiles(host);
    specs.push({
      file: files.server,
      cn: host.memberName,
      sans,
      usages: ['serverAuth', 'clientAuth'],
    });
    specs.push({
      file: files.peer,
      cn: host.memberName,
      sans,
      usages: ['serverAuth', 'clientAuth'],
    });
  }
  for (const client of ['k3s', 'admin']) {
    specs.push({
      file: {
        path: `${CLIENT_DIR}/${client}.pem`,
        keyPath: `${CLIENT_DIR}/${client}-key.pem`,
        kind: 'client',
        name: `${client} client`,
      },
      cn: client,
      sans: [],
      usages: ['clientAuth'],
    });
  }
  return specs;
}

/**
 * The monitoring client (`k3s-etcd monitoring export`): ClientAuth only, CN monitoring, for a
 * Prometheus that reads /metrics. Issued on demand by the export, not by `certs generate`. Not
 * read-only: etcd runs without authentication, so it can write like any certificate of the CA.
 */
export const MONITORING_CLIENT: LeafSpec = {
  file: {
    path: `${CLIENT_DIR}/monitoring.pem`,
    keyPath: `${CLIENT_DIR}/monitoring-key.pem`,
    kind: 'client',
    name: 'monitoring client',
  },
  cn: 'monitoring',
  sans: [],
  usages: ['clientAuth'],
};

/** Every file the index records when it is there (the monitoring client only once issued). */
export function knownFiles(cluster: Cluster): KnownFile[] {
  return [CA_KNOWN, ...desiredLeaves(cluster).map((s) => s.file), MONITORING_CLIENT.file];
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Why an existing leaf cannot stay, or undefined when it matches what the inventory asks for. */
async function staleReason(
  dir: string,
  spec: LeafSpec,
  ca: X509Certificate | undefined,
  now: Date,
): Promise<string | undefined> {
  const certPem = await readText(join(dir, spec.file.path));
  const keyPem = await readText(join(dir, spec.file.keyPath));
  if (certPem === undefined || keyPem === undefined) return 'one of the pair is missing';
  let cert: X509Certificate;
  try {
    cert = parseCertificate(certPem);
  } catch {
    return 'not a readable certificate';
  }
  if (!ca || !cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'signed by another CA';
  try {
    if (!keyMatches(cert, (await loadPrivateKey(keyPem, spec.file.keyPath)).keyObject))
      return 'the key does not match the certificate';
  } catch {
    return 'the key is unreadable';
  }
  const { state, daysLeft } = expiryOf(cert, now);
  if (state === 'expired') return 'expired';
  if (state === 'expiring') return `expires in ${daysLeft} days`;
  const have = new Set(sansOf(cert).map((s) => s.toLowerCase()));
  const missing = spec.sans.filter((s) => !have.has(s));
  const extra = [...have].filter((s) => !spec.sans.includes(s));
  if (missing.length || extra.length) {
    return `SANs differ (${[...missing.map((s) => `+${s}`), ...extra.map((s) => `-${s}`)].join(', ')})`;
  }
  const ekus = (cert.keyUsage ?? []).map((o) => EKU_NAMES[o] ?? o);
  if (!spec.usages.every((u) => ekus.includes(u)))
    return `extended key usage lacks ${spec.usages.filter((u) => !ekus.includes(u)).join(', ')}`;
  return undefined;
}

/** Checks that a certificate can act as the CA now. */
export function assertUsableCa(cert: X509Certificate, label: string, now: Date): void {
  if (!cert.ca)
    throw new PkiError(
      'not-a-ca',
      `${label} is not a CA certificate (no basicConstraints CA:true); import the CA, not a leaf`,
    );
  const { state } = expiryOf(cert, now);
  if (state === 'expired')
    throw new PkiError(
      'ca-expired',
      `${label} expired on ${new Date(cert.validTo).toISOString().slice(0, 10)}: create or import a new CA`,
    );
}

/**
 * A private key in the workspace, its passphrase asked (up to three times) through
 * `opts.askPassphrase` when it is encrypted; returns the passphrase that opened it too, so what
 * is written beside it can be encrypted alike. Never kept beyond the caller.
 */
export async function loadKeyAsking(
  text: string,
  label: string,
  opts: PkiOptions,
): Promise<{ key: LoadedKey; passphrase?: string }> {
  if (!isEncryptedPem(text)) return { key: await loadPrivateKey(text, label) };
  for (let attempt = 0; attempt < 3; attempt++) {
    const passphrase = await opts.askPassphrase?.(label, attempt > 0);
    if (passphrase === undefined) {
      if (!opts.askPassphrase) await loadPrivateKey(text, label); // throws passphrase-required
      throw new CancelledError('Passphrase entry');
    }
    try {
      return { key: await loadPrivateKey(text, label, passphrase), passphrase };
    } catch (err) {
      if (!(err instanceof PkiError && err.code === 'passphrase-wrong') || attempt === 2) throw err;
    }
  }
  throw new PkiError('passphrase-wrong', `wrong passphrase for ${label}`);
}

async function loadCaKey(dir: string, opts: PkiOptions) {
  const text = await readFile(join(dir, CA_FILES.key), 'utf8');
  return (await loadKeyAsking(text, CA_FILES.key, opts)).key;
}

async function existingCa(dir: string): Promise<{ cert: X509Certificate } | undefined> {
  const [hasCert, hasKey] = await Promise.all([
    exists(join(dir, CA_FILES.cert)),
    exists(join(dir, CA_FILES.key)),
  ]);
  if (!hasCert && !hasKey) return undefined;
  if (hasCert !== hasKey) {
    throw new PkiError(
      'ca-incomplete',
      `${dir} has ${hasCert ? CA_FILES.cert : CA_FILES.key} but not ${hasCert ? CA_FILES.key : CA_FILES.cert}: restore the missing half or import the CA again`,
    );
  }
  const pem = await readFile(join(dir, CA_FILES.cert), 'utf8');
  return { cert: parseCertificate(pem) };
}

function validityWarnings(cluster: Cluster): string[] {
  const w: string[] = [];
  if (cluster.pki.leafValidityDays > 3650) {
    w.push(
      `leaf certificates valid for ${(cluster.pki.leafValidityDays / 365).toFixed(0)} years: a leaked key stays usable that long. The default is 5 years; re-issue before expiry instead.`,
    );
  }
  if (cluster.pki.caValidityDays > 7300) {
    w.push(
      `a CA valid for ${(cluster.pki.caValidityDays / 365).toFixed(0)} years: the default is 10 years.`,
    );
  }
  return w;
}

/** What generation would do, without writing anything. */
export async function planCertificateSet(
  cluster: Cluster,
  opts: PkiOptions = {},
  forceReplace: ReadonlySet<string> = new Set(),
  overrides?: Map<string, string[]>,
): Promise<SetPlan> {
  const now = opts.now ?? new Date();
  const dir = cluster.pki.dir;
  const algorithm = effectiveAlgorithm(cluster, opts.defaultAlgorithm);
  const specs = desiredLeaves(cluster, overrides);
  const ca = await existingCa(dir);
  if (ca) assertUsableCa(ca.cert, join(cluster.pki.dir, CA_FILES.cert), now);
  const leaves: LeafPlan[] = [];
  for (const spec of specs) {
    const present =
      (await exists(join(dir, spec.file.path))) || (await exists(join(dir, spec.file.keyPath)));
    if (!present) {
      leaves.push({ spec, action: 'create' });
      continue;
    }
    const reason = forceReplace.has(spec.file.path)
      ? 're-issue asked for'
      : await staleReason(dir, spec, ca?.cert, now);
    leaves.push(reason ? { spec, action: 'replace', reason } : { spec, action: 'keep' });
  }
  return {
    cluster: cluster.name,
    dir,
    algorithm,
    caAction: ca ? 'reuse' : 'create',
    leaves,
    warnings: validityWarnings(cluster),
  };
}

/**
 * What issuing the monitoring client would do: keep a valid one (under the CA, key matching,
 * not expiring), create it when missing, replace it otherwise (asked first, like the set).
 */
export async function planMonitoringClient(
  cluster: Cluster,
  opts: PkiOptions = {},
): Promise<SetPlan> {
  const now = opts.now ?? new Date();
  const dir = cluster.pki.dir;
  const ca = await existingCa(dir);
  if (!ca)
    throw new PkiError(
      'ca-incomplete',
      `cluster ${cluster.name} has no CA in ${dir} to issue the monitoring client certificate: generate the certificate set (\`k3s-etcd certs generate\`) or import the CA first`,
    );
  assertUsableCa(ca.cert, join(dir, CA_FILES.cert), now);
  const spec = MONITORING_CLIENT;
  const present =
    (await exists(join(dir, spec.file.path))) || (await exists(join(dir, spec.file.keyPath)));
  const reason = present ? await staleReason(dir, spec, ca.cert, now) : undefined;
  return {
    cluster: cluster.name,
    dir,
    algorithm: effectiveAlgorithm(cluster, opts.defaultAlgorithm),
    caAction: 'reuse',
    leaves: [
      !present
        ? { spec, action: 'create' }
        : reason
          ? { spec, action: 'replace', reason }
          : { spec, action: 'keep' },
    ],
    warnings: [],
  };
}

/** Human-readable plan: one line per file. */
export function describePlan(plan: SetPlan): string[] {
  const lines = [
    `${plan.caAction === 'create' ? 'create' : 'reuse '}  ${CA_FILES.cert}, ${CA_FILES.key}`,
  ];
  for (const l of plan.leaves) {
    lines.push(
      `${l.action.padEnd(7)} ${l.spec.file.path}, ${l.spec.file.keyPath}${l.reason ? `  (${l.reason})` : ''}`,
    );
  }
  return lines;
}

/** A leaf's validity issued `now`: back-dated a little for lagging clocks, leafValidityDays long. */
export function leafValidity(cluster: Cluster, now: Date): Validity {
  return {
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + cluster.pki.leafValidityDays * DAY),
  };
}

/**
 * The cluster's CA as an issuer of new leaves (its key asked for when encrypted, checked against
 * the certificate), with the certificate itself.
 */
export async function loadIssuer(
  cluster: Cluster,
  opts: PkiOptions = {},
): Promise<{ issuer: Issuer; ca: X509Certificate; algorithm: KeyAlgorithm }> {
  const dir = cluster.pki.dir;
  const ca = await existingCa(dir);
  if (!ca)
    throw new PkiError(
      'ca-incomplete',
      `cluster ${cluster.name} has no CA in ${dir} yet: generate the certificate set first`,
    );
  assertUsableCa(ca.cert, join(dir, CA_FILES.cert), opts.now ?? new Date());
  const key = await loadCaKey(dir, opts);
  if (!keyMatches(ca.cert, key.keyObject))
    throw new PkiError(
      'key-mismatch',
      `${CA_FILES.key} does not belong to ${CA_FILES.cert}: nothing was written`,
    );
  return {
    issuer: {
      certPem: await readFile(join(dir, CA_FILES.cert), 'utf8'),
      signingKey: key.signingKey,
    },
    ca: ca.cert,
    algorithm: effectiveAlgorithm(cluster, opts.defaultAlgorithm),
  };
}

/** `certs rotate-ca`'s state in the pki folder while a CA rotation is under way. */
export const ROTATION_STATE_FILE = 'rotation.json';

/**
 * Refuses while a CA rotation is under way: ca.pem is then the trust bundle, and anything
 * issued or imported now would be under the old CA, cut off by the rotation's last phase.
 */
async function refuseDuringRotation(cluster: Cluster, what: string): Promise<void> {
  const under = await stat(join(cluster.pki.dir, ROTATION_STATE_FILE)).then(
    () => true,
    () => false,
  );
  if (under)
    throw new PkiError(
      'rotation-under-way',
      `${what}: a CA rotation of ${cluster.name} is under way (${ROTATION_STATE_FILE} in ${cluster.pki.dir}); its phase 2 re-issues every certificate under the new CA. Finish it with \`k3s-etcd certs rotate-ca\` first. Nothing was changed.`,
    );
}

/** Carries out a plan: asks before replacing, writes everything at once, refreshes index.json. */
export async function writePlan(
  cluster: Cluster,
  plan: SetPlan,
  opts: PkiOptions = {},
): Promise<WriteResult> {
  await refuseDuringRotation(cluster, 'No certificate written');
  const now = opts.now ?? new Date();
  const dir = cluster.pki.dir;
  const replacing = plan.leaves.filter((l) => l.action === 'replace');
  if (replacing.length > 0) {
    const files = replacing.flatMap((l) => [
      join(dir, l.spec.file.path),
      join(dir, l.spec.file.keyPath),
    ]);
    const reasons = replacing.map((l) => `${l.spec.file.path}: ${l.reason ?? ''}`);
    const ok = opts.confirmReplace ? await opts.confirmReplace(files, reasons) : false;
    if (!ok)
      throw new PkiError(
        'declined',
        `Nothing was written: replacing ${files.length} existing file(s) was not confirmed.`,
      );
  }
  throwIfAborted(opts.signal, 'Certificate generation');

  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const toWrite: FileToWrite[] = [];
  let issuer: Issuer;
  let caNotAfter: Date;
  if (plan.caAction === 'create') {
    caNotAfter = new Date(now.getTime() + cluster.pki.caValidityDays * DAY);
    const ca = await createCa(`${cluster.name} etcd CA`, plan.algorithm, {
      notBefore,
      notAfter: caNotAfter,
    });
    toWrite.push(
      { path: join(dir, CA_FILES.cert), content: ca.certPem, mode: 0o644 },
      { path: join(dir, CA_FILES.key), content: ca.keyPem, mode: 0o600 },
    );
    issuer = {
      certPem: ca.certPem,
      signingKey: (await loadPrivateKey(ca.keyPem, CA_FILES.key)).signingKey,
    };
  } else {
    const certPem = await readFile(join(dir, CA_FILES.cert), 'utf8');
    const key = await loadCaKey(dir, opts);
    const cert = parseCertificate(certPem);
    if (!keyMatches(cert, key.keyObject))
      throw new PkiError(
        'key-mismatch',
        `${CA_FILES.key} does not belong to ${CA_FILES.cert}: nothing was written`,
      );
    caNotAfter = new Date(cert.validTo);
    issuer = { certPem, signingKey: key.signingKey };
  }

  let leafNotAfter = new Date(now.getTime() + cluster.pki.leafValidityDays * DAY);
  if (leafNotAfter > caNotAfter) {
    plan.warnings.push(
      `leaf certificates end with the CA on ${caNotAfter.toISOString().slice(0, 10)}, earlier than leafValidityDays asks`,
    );
    leafNotAfter = caNotAfter;
  }
  const validity: Validity = { notBefore, notAfter: leafNotAfter };
  for (const l of plan.leaves) {
    if (l.action === 'keep') continue;
    throwIfAborted(opts.signal, 'Certificate generation');
    const pair = await issueLeaf(
      {
        cn: l.spec.cn,
        sans: l.spec.sans,
        usages: l.spec.usages,
        algorithm: plan.algorithm,
        validity,
      },
      issuer,
    );
    toWrite.push(
      { path: join(dir, l.spec.file.path), content: pair.certPem, mode: 0o644 },
      { path: join(dir, l.spec.file.keyPath), content: pair.keyPem, mode: 0o600 },
    );
  }
  await writeAtomically(toWrite, dir);
  const index = await writeIndex(dir, cluster.name, knownFiles(cluster), now);
  return { plan, written: toWrite.map((f) => rel(dir, f.path)), index };
}

export async function generateCertificateSet(
  cluster: Cluster,
  opts: PkiOptions = {},
): Promise<WriteResult> {
  return writePlan(cluster, await planCertificateSet(cluster, opts), opts);
}

/**
 * New server and peer certificates for one member, under the same CA, with the SANs the
 * inventory gives now plus `extraSans` (the IP-change repair passes the new address).
 */
export async function planReissue(
  cluster: Cluster,
  member: string,
  extraSans: readonly string[] = [],
  opts: PkiOptions = {},
): Promise<SetPlan> {
  const host = etcdHosts(cluster).find((h) => h.memberName === member);
  if (!host) {
    throw new PkiError(
      'unknown-member',
      `no etcd member "${member}" in cluster ${cluster.name} (members: ${etcdHosts(cluster)
        .map((h) => h.memberName)
        .join(', ')})`,
    );
  }
  if (!(await existingCa(cluster.pki.dir))) {
    throw new PkiError(
      'ca-incomplete',
      `cluster ${cluster.name} has no CA in ${cluster.pki.dir} yet: generate the certificate set first`,
    );
  }
  const files = memberFiles(host);
  const plan = await planCertificateSet(
    cluster,
    opts,
    new Set([files.server.path, files.peer.path]),
    new Map([[member, [...extraSans]]]),
  );
  // Only this member's pair is part of a re-issue; everything else stays as it is.
  plan.leaves = plan.leaves.filter((l) => l.spec.file.member === member);
  return plan;
}

export async function reissueMember(
  cluster: Cluster,
  member: string,
  extraSans: readonly string[] = [],
  opts: PkiOptions = {},
): Promise<WriteResult> {
  return writePlan(cluster, await planReissue(cluster, member, extraSans, opts), opts);
}

/**
 * Uses an existing CA (cfssl's, openssl's, K3s's etcd CA) for this cluster: checks it is a CA,
 * not expired, and that the key belongs to it, before anything is written. The key is copied
 * as it is (an encrypted key stays encrypted).
 */
export async function importCa(
  cluster: Cluster,
  certFile: string,
  keyFile: string,
  opts: PkiOptions & { passphrase?: string } = {},
): Promise<WriteResult> {
  await refuseDuringRotation(cluster, 'No CA imported');
  const now = opts.now ?? new Date();
  const dir = cluster.pki.dir;
  const certText = await readFile(certFile, 'utf8');
  const keyText = await readFile(keyFile, 'utf8');
  let cert: X509Certificate;
  try {
    cert = parseCertificate(certText);
  } catch (err) {
    throw new PkiError('not-a-ca', `${certFile} is not a PEM certificate`, { cause: err });
  }
  assertUsableCa(cert, certFile, now);
  let passphrase = opts.passphrase;
  if (isEncryptedPem(keyText) && passphrase === undefined) {
    passphrase = await opts.askPassphrase?.(keyFile, false);
    if (passphrase === undefined && opts.askPassphrase)
      throw new CancelledError('Passphrase entry');
  }
  const key = await loadPrivateKey(keyText, keyFile, passphrase);
  if (!keyMatches(cert, key.keyObject)) {
    throw new PkiError(
      'key-mismatch',
      `${keyFile} does not belong to ${certFile} (their public keys differ): nothing was imported`,
    );
  }
  const current = await existingCa(dir).catch(() => undefined);
  if (current && current.cert.fingerprint256 !== cert.fingerprint256) {
    const files = [join(dir, CA_FILES.cert), join(dir, CA_FILES.key)];
    const ok = opts.confirmReplace
      ? await opts.confirmReplace(files, [
          'replacing the CA: certificates issued by the old CA stop being trusted; generate the set again afterwards',
        ])
      : false;
    if (!ok)
      throw new PkiError(
        'declined',
        'Nothing was imported: replacing the existing CA was not confirmed.',
      );
  }
  const certPem = cert.toString();
  await writeAtomically(
    [
      {
        path: join(dir, CA_FILES.cert),
        content: certPem.endsWith('\n') ? certPem : `${certPem}\n`,
        mode: 0o644,
      },
      { path: join(dir, CA_FILES.key), content: keyText, mode: 0o600 },
    ],
    dir,
  );
  const index = await writeIndex(dir, cluster.name, knownFiles(cluster), now);
  return {
    plan: {
      cluster: cluster.name,
      dir,
      algorithm: effectiveAlgorithm(cluster, opts.defaultAlgorithm),
      caAction: 'reuse',
      leaves: [],
      warnings: [],
    },
    written: [CA_FILES.cert, CA_FILES.key],
    index,
  };
}

export interface Inspection {
  file: string;
  info: CertInfo;
  chain?: { ca: string; ok: boolean };
  keyMatch?: { key: string; ok: boolean };
}

/** A certificate's details, its chain check against a CA, and whether a key belongs to it. */
export async function inspectCertificate(
  file: string,
  opts: { caFile?: string; keyFile?: string; now?: Date } = {},
): Promise<Inspection> {
  const cert = parseCertificate(await readFile(file, 'utf8'));
  const out: Inspection = { file, info: certInfo(cert, opts.now) };
  if (opts.caFile && (await exists(opts.caFile))) {
    const ca = parseCertificate(await readFile(opts.caFile, 'utf8'));
    out.chain = { ca: opts.caFile, ok: cert.checkIssued(ca) && cert.verify(ca.publicKey) };
  }
  if (opts.keyFile && (await exists(opts.keyFile))) {
    const text = await readFile(opts.keyFile, 'utf8');
    if (!isEncryptedPem(text)) {
      const key = await loadPrivateKey(text, opts.keyFile).catch(() => undefined);
      out.keyMatch = { key: opts.keyFile, ok: key ? keyMatches(cert, key.keyObject) : false };
    }
  }
  return out;
}

export function formatInspection(i: Inspection): string {
  const d = i.info;
  const state =
    d.expiry === 'expired'
      ? 'EXPIRED'
      : d.expiry === 'expiring'
        ? `expires in ${d.daysLeft} days`
        : d.expiry === 'not-yet-valid'
          ? 'not yet valid'
          : `${d.daysLeft} days left`;
  return [
    `File:          ${i.file}`,
    `Subject:       ${d.subject}`,
    `Issuer:        ${d.issuer}`,
    `Serial:        ${d.serial}`,
    `Key:           ${d.keyType}`,
    `CA:            ${d.isCa ? 'yes' : 'no'}`,
    `SANs:          ${d.sans.join(', ') || '(none)'}`,
    `Key usages:    ${d.extendedKeyUsages.join(', ') || '(none)'}`,
    `Valid from:    ${d.notBefore}`,
    `Valid until:   ${d.notAfter} (${state})`,
    `SHA-256:       ${d.sha256}`,
    ...(i.chain
      ? [`Chain:         ${i.chain.ok ? 'signed by' : 'NOT signed by'} ${i.chain.ca}`]
      : []),
    ...(i.keyMatch
      ? [`Private key:   ${i.keyMatch.ok ? 'matches' : 'does NOT match'} ${i.keyMatch.key}`]
      : []),
  ].join('\n');
}

export { readIndex };
