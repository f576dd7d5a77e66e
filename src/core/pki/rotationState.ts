/**
 * A CA rotation's rotation.json in the pki folder, parsed as hostile input (every field checked,
 * host names only those of the inventory). Pure, and below the operations: `certs rotate-ca`
 * (core/rotate) writes and acts on it; `certs check` (core/pkiHost) reads it to say which hosts
 * the rotation has not reached yet.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster } from '../inventory/types';
import { ROTATION_STATE_FILE } from './set';

export type Phase = 1 | 2 | 3;

export interface RotationState {
  version: 1;
  phase: Phase;
  /** SHA-256 fingerprints as Node prints them (`AB:CD:…`). */
  oldCa: string;
  newCa: string;
  /** Member host names that finished the current phase. */
  members: string[];
  /** K3s server host names that finished the current phase. */
  k3sServers: string[];
  startedAt: string;
}

const FINGERPRINT = /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/;
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** rotation.json's text as a state, or why it is not one (never trusted beyond these checks). */
export function parseRotationState(
  text: string,
  hostNames: ReadonlySet<string>,
): { ok: true; state: RotationState } | { ok: false; problem: string } {
  if (text.length > 65_536) return { ok: false, problem: 'it is too large' };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'it is not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return { ok: false, problem: 'it is not an object' };
  const o = v as Record<string, unknown>;
  if (o['version'] !== 1) return { ok: false, problem: 'its version is not 1' };
  const phase = o['phase'];
  if (phase !== 1 && phase !== 2 && phase !== 3)
    return { ok: false, problem: 'its phase is not 1, 2 or 3' };
  for (const k of ['oldCa', 'newCa'])
    if (typeof o[k] !== 'string' || !FINGERPRINT.test(o[k] as string))
      return { ok: false, problem: `${k} is not a SHA-256 fingerprint` };
  if (o['oldCa'] === o['newCa']) return { ok: false, problem: 'oldCa and newCa are the same' };
  const lists: Record<string, string[]> = {};
  for (const k of ['members', 'k3sServers']) {
    const l = o[k];
    if (!Array.isArray(l) || l.length > 1000)
      return { ok: false, problem: `${k} is not a list of host names` };
    for (const n of l) {
      if (typeof n !== 'string' || !HOST_NAME.test(n))
        return { ok: false, problem: `${k} holds something that is not a host name` };
      if (!hostNames.has(n))
        return { ok: false, problem: `${k} names ${n}, which is not a host of the inventory` };
    }
    lists[k] = [...new Set(l as string[])];
  }
  const startedAt = o['startedAt'];
  if (typeof startedAt !== 'string' || Number.isNaN(Date.parse(startedAt)))
    return { ok: false, problem: 'startedAt is not a time' };
  return {
    ok: true,
    state: {
      version: 1,
      phase,
      oldCa: o['oldCa'] as string,
      newCa: o['newCa'] as string,
      members: lists['members'] as string[],
      k3sServers: lists['k3sServers'] as string[],
      startedAt: new Date(startedAt).toISOString(),
    },
  };
}

/**
 * The cluster's rotation.json: undefined when no rotation is under way, else its state or why it
 * cannot be used (its CA files are checked by `certs rotate-ca`, not here).
 */
export async function readRotationState(
  cluster: Cluster,
): Promise<{ ok: true; state: RotationState } | { ok: false; problem: string } | undefined> {
  let text: string;
  try {
    text = await readFile(join(cluster.pki.dir, ROTATION_STATE_FILE), 'utf8');
  } catch {
    return undefined;
  }
  return parseRotationState(text, new Set(cluster.hosts.map((h) => h.name)));
}
