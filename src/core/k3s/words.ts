/**
 * The words of a K3s state restore's confirmation, once for both front ends (`k3s restore` and
 * Restore K3s State…): the question, what the backup holds, and what happens to the files it
 * replaces. Each front end lays them out its own way (a terminal's lines, a modal's detail).
 */
import { localStamp, type Moment } from '../format/stamp';
import type { BackupManifest } from './backup';

export interface K3sRestoreConfirmation {
  /** "Restore srv-1's K3s state from 20250101T000000Z?" */
  question: string;
  /** How the backup was made, and when. */
  backup: string;
  /** Each file it writes, with its size. */
  files: string[];
  /** What must hold on the host, and what happens to the files replaced. */
  note: string;
}

/** `backup` names it as the front end showed it: the folder's time, or its path. */
export function k3sRestoreConfirmation(
  host: string,
  backup: string,
  manifest: BackupManifest,
  stamp: (at: Moment) => string = localStamp,
): K3sRestoreConfirmation {
  return {
    question: `Restore ${host}'s K3s state from ${backup}?`,
    backup: `${manifest.method}, ${stamp(manifest.createdAt)}. Files written (0600):`,
    files: manifest.files.map((f) => `${f.path} (${f.bytes} bytes)`),
    note: 'K3s must be stopped on the host. The files replaced are moved aside (*.before-restore-<time>), not deleted.',
  };
}
