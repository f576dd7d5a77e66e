/**
 * A CA rotation's state in the workspace (the pki folder), read as hostile input:
 *   rotation.json        { version 1, phase 1|2|3, oldCa, newCa (SHA-256 fingerprints),
 *                          members and k3sServers: the hosts that finished the current phase }
 *   rotation/ca.pem      the new CA, rotation/ca-key.pem its key (0600, the folder 0700;
 *                        encrypted with ca-key.pem's passphrase when ca-key.pem is encrypted)
 *   rotation/old-ca.pem  the old CA alone (ca-key.pem stays its key until phase 3 ends)
 *   ca.pem               during the rotation: what the hosts trust (the bundle, old + new)
 * When phase 3 finished, the old CA and its key go to `ca-old-<UTC time>/`, ca.pem and
 * ca-key.pem are the new CA's, and rotation.json and rotation/ are removed.
 */
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { K3sEtcdError, errorMessage } from '../errors';
import { backupStamp } from '../format/stamp';
import { etcdHosts, k3sServers } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { keyMatches, parseCertificate } from '../pki/inspect';
import { encryptPrivateKeyPem, isEncryptedPem } from '../pki/keys';
import { readRotationState, type Phase, type RotationState } from '../pki/rotationState';
import {
  CA_FILES,
  knownFiles,
  loadKeyAsking,
  ROTATION_STATE_FILE,
  type PkiOptions,
} from '../pki/set';
import { writeAtomically, writeIndex } from '../pki/store';

export const STATE_FILE = ROTATION_STATE_FILE;
export const ROTATION_DIR = 'rotation';
export const NEW_CA = { cert: `${ROTATION_DIR}/ca.pem`, key: `${ROTATION_DIR}/ca-key.pem` };
export const OLD_CA = `${ROTATION_DIR}/old-ca.pem`;

export { parseRotationState, type Phase, type RotationState } from '../pki/rotationState';

const broken = (dir: string, why: string) =>
  new K3sEtcdError(
    'provision-refused',
    `The CA rotation's state in ${dir} cannot be used: ${why}. Nothing was changed; look at ${join(dir, STATE_FILE)} and ${join(dir, ROTATION_DIR)}/ (the new CA) before going on.`,
  );

/** What an ongoing rotation holds in the workspace, checked against rotation.json. */
export interface Rotation {
  state: RotationState;
  oldCaPem: string;
  newCaPem: string;
  newCa: X509Certificate;
}

/** The ongoing rotation, or undefined when there is none. */
export async function readRotation(cluster: Cluster): Promise<Rotation | undefined> {
  const dir = cluster.pki.dir;
  const parsed = await readRotationState(cluster);
  if (!parsed) return undefined;
  if (!parsed.ok) throw broken(dir, `${STATE_FILE}: ${parsed.problem}`);
  const { state } = parsed;
  const cert = async (rel: string, want: string) => {
    let pem: string;
    let c: X509Certificate;
    try {
      pem = await readFile(join(dir, rel), 'utf8');
      c = parseCertificate(pem);
    } catch {
      throw broken(dir, `${rel} is missing or not a certificate`);
    }
    if (c.fingerprint256 !== want) throw broken(dir, `${rel} is not the CA ${STATE_FILE} names`);
    return { pem, c };
  };
  const oldCa = await cert(OLD_CA, state.oldCa);
  const newCa = await cert(NEW_CA.cert, state.newCa);
  return { state, oldCaPem: oldCa.pem, newCaPem: newCa.pem, newCa: newCa.c };
}

/** How far an ongoing rotation is, for the tree: or why its state cannot be used. */
export type RotationProgress =
  | {
      phase: Phase;
      /** Hosts that finished the current phase, and how many it has. */
      done: number;
      of: number;
      startedAt: string;
      /** The new CA's end of validity (ISO). */
      newCaUntil: string;
    }
  | { problem: string };

/** The ongoing rotation of `cluster` in words the tree uses, or undefined when there is none. */
export async function rotationProgress(cluster: Cluster): Promise<RotationProgress | undefined> {
  let rot: Rotation | undefined;
  try {
    rot = await readRotation(cluster);
  } catch (err) {
    return { problem: errorMessage(err) };
  }
  if (!rot) return undefined;
  const members = etcdHosts(cluster).length;
  const servers = cluster.datastore === 'external-etcd' ? k3sServers(cluster).length : 0;
  return {
    phase: rot.state.phase,
    done: rot.state.members.length + rot.state.k3sServers.length,
    of: members + servers,
    startedAt: rot.state.startedAt,
    newCaUntil: new Date(rot.newCa.validTo).toISOString(),
  };
}

/** The label a passphrase is asked with for the new CA's key (ca-key.pem's passphrase). */
export const NEW_CA_KEY_LABEL = `${NEW_CA.key} (the new CA's key, encrypted with the passphrase of ${CA_FILES.key})`;

/**
 * The new CA's key as the rotation writes it (0600): when the CA key it replaces (ca-key.pem) is
 * encrypted, encrypted with the same passphrase, asked as every command asks it and checked by
 * opening ca-key.pem with it, so an encrypted CA key stays encrypted through the rotation and
 * after it; else as it is, as `certs generate` writes a CA key.
 */
export async function newCaKeyPem(
  cluster: Cluster,
  keyPem: string,
  pki: PkiOptions = {},
): Promise<string> {
  let old: string;
  try {
    old = await readFile(join(cluster.pki.dir, CA_FILES.key), 'utf8');
  } catch {
    return keyPem;
  }
  if (!isEncryptedPem(old)) return keyPem;
  const { passphrase } = await loadKeyAsking(old, CA_FILES.key, pki);
  return encryptPrivateKeyPem(keyPem, passphrase ?? '');
}

/** The new CA's signing key, its passphrase asked when it is encrypted (ca-key.pem's). */
export async function newCaSigningKey(
  cluster: Cluster,
  newCa: X509Certificate,
  pki: PkiOptions = {},
) {
  const dir = cluster.pki.dir;
  const text = await readFile(join(dir, NEW_CA.key), 'utf8');
  const { key } = await loadKeyAsking(text, NEW_CA_KEY_LABEL, pki);
  if (!keyMatches(newCa, key.keyObject))
    throw broken(dir, `${NEW_CA.key} does not match ${NEW_CA.cert}`);
  return key.signingKey;
}

/** The trust bundle: the old CA, then the new one. */
export const bundleOf = (oldCaPem: string, newCaPem: string) =>
  `${oldCaPem.trimEnd()}\n${newCaPem.trimEnd()}\n`;

export async function writeState(dir: string, state: RotationState): Promise<void> {
  await writeAtomically(
    [{ path: join(dir, STATE_FILE), content: `${JSON.stringify(state, null, 2)}\n`, mode: 0o600 }],
    dir,
  );
}

/**
 * Phase 1 begins: the new CA (and the old one alone) kept in rotation/, ca.pem the bundle,
 * then rotation.json, written last so a state always has its files.
 */
export async function beginRotation(
  cluster: Cluster,
  oldCaPem: string,
  newCa: { certPem: string; keyPem: string },
  state: RotationState,
): Promise<void> {
  const dir = cluster.pki.dir;
  await mkdir(join(dir, ROTATION_DIR), { recursive: true, mode: 0o700 });
  await chmod(join(dir, ROTATION_DIR), 0o700);
  await writeAtomically(
    [
      { path: join(dir, NEW_CA.cert), content: newCa.certPem, mode: 0o644 },
      { path: join(dir, NEW_CA.key), content: newCa.keyPem, mode: 0o600 },
      { path: join(dir, OLD_CA), content: oldCaPem, mode: 0o644 },
      { path: join(dir, CA_FILES.cert), content: bundleOf(oldCaPem, newCa.certPem), mode: 0o644 },
    ],
    dir,
  );
  await writeState(dir, state);
}

/** The name of the folder the old CA is kept in. */
export const oldCaFolder = (now: Date) => `ca-old-${backupStamp(now)}`;

/**
 * Phase 3 ended: the old CA and its key moved to `ca-old-<UTC time>/`, the new CA and its key
 * as ca.pem and ca-key.pem, rotation.json and rotation/ removed. Returns the folder (relative).
 */
export async function finishRotation(cluster: Cluster, now: Date): Promise<string> {
  const dir = cluster.pki.dir;
  const folder = oldCaFolder(now);
  await mkdir(join(dir, folder), { mode: 0o700 });
  const oldKey = join(dir, CA_FILES.key);
  await writeAtomically(
    [
      {
        path: join(dir, folder, CA_FILES.cert),
        content: await readFile(join(dir, OLD_CA), 'utf8'),
        mode: 0o644,
      },
      {
        path: join(dir, folder, CA_FILES.key),
        content: await readFile(oldKey, 'utf8'),
        mode: 0o600,
      },
    ],
    dir,
  );
  await writeAtomically(
    [
      {
        path: join(dir, CA_FILES.cert),
        content: await readFile(join(dir, NEW_CA.cert), 'utf8'),
        mode: 0o644,
      },
      { path: oldKey, content: await readFile(join(dir, NEW_CA.key), 'utf8'), mode: 0o600 },
    ],
    dir,
  );
  await rm(join(dir, STATE_FILE), { force: true });
  await rm(join(dir, ROTATION_DIR), { recursive: true, force: true });
  await writeIndex(dir, cluster.name, knownFiles(cluster), now);
  return folder;
}
