/**
 * A member's rollback set: before its change, a copy of every file its service restarts on
 * (binaries, env file, unit, certificates and keys) in a fresh root-only folder on the host; on
 * failure those files put back (a file that did not exist is removed again), systemd reloaded
 * and the service restarted on them. The folder is removed once the member is healthy again.
 */
import { K3sEtcdError } from '../errors';
import { journalTail } from '../plan/snippets';
import type { HostTransport } from '../plan/runner';
import { shellQuote as q } from '../ssh/quote';

/** The folder's shape: the only answer of the host that reaches a later script or an rm -rf. */
const FOLDER = /^\/var\/tmp\/\.k3s-etcd-rollback-[A-Za-z0-9]{6,}$/;

/** The script that copies `paths` into a new folder and prints the folder's path. */
export function backupScript(paths: readonly string[]): string {
  const lines = [
    'set -eu',
    'umask 077',
    'B=$(mktemp -d /var/tmp/.k3s-etcd-rollback-XXXXXX)',
    // Only files in folders root owns are copied back later (nobody else can swap them for links).
    'root_dir() { d=$(dirname "$1"); [ ! -e "$d" ] || [ "$(stat -c %u "$d")" = 0 ]; }',
  ];
  paths.forEach((p, i) => {
    lines.push(
      `root_dir ${q(p)} || { echo ${q(`${p}: its folder is not owned by root: no rollback set taken`)} >&2; rm -rf "$B"; exit 1; }`,
      `if [ -e ${q(p)} ] || [ -L ${q(p)} ]; then cp -pP ${q(p)} "$B/${i}"; else : > "$B/${i}.absent"; fi`,
    );
  });
  lines.push('echo "$B"');
  return `${lines.join('\n')}\n`;
}

/** The script that puts `paths` back from `folder` and restarts `unit` on them. */
export function restoreScript(folder: string, paths: readonly string[], unit: string): string {
  if (!FOLDER.test(folder)) throw new Error(`not a rollback folder: ${folder}`);
  const u = q(unit);
  const lines = [
    'set -eu',
    `B=${q(folder)}`,
    '[ -d "$B" ] || { echo "the rollback set $B is gone" >&2; exit 1; }',
  ];
  paths.forEach((p, i) => {
    lines.push(
      `if [ -e "$B/${i}.absent" ]; then rm -f ${q(p)}`,
      `else cp -pP "$B/${i}" ${q(`${p}.k3s-etcd-restore`)} && { mv -fT ${q(`${p}.k3s-etcd-restore`)} ${q(p)} 2>/dev/null || mv -f ${q(`${p}.k3s-etcd-restore`)} ${q(p)}; }; fi`,
      `echo ${q(`    put back ${p}`)}`,
    );
  });
  lines.push(
    'systemctl daemon-reload',
    `systemctl reset-failed ${u} 2>/dev/null || true`,
    `systemctl restart ${u} || true`,
    'i=0',
    `until systemctl is-active -q ${u}; do`,
    '  i=$((i + 1))',
    `  if [ "$i" -ge 90 ]; then ${journalTail(unit)}; echo ${q(`${unit} did not become active on the previous files within 90 s`)} >&2; exit 1; fi`,
    '  sleep 1',
    'done',
    `echo ${q(`    ${unit} restarted on the previous files`)}`,
  );
  return `${lines.join('\n')}\n`;
}

/** A rollback set taken on a host. */
export interface RollbackSet {
  folder: string;
  paths: string[];
  unit: string;
}

async function sh(t: HostTransport, script: string, signal?: AbortSignal) {
  return t.exec('sh -s', { sudo: true, stdin: script, ...(signal ? { signal } : {}) });
}

/** Copies `paths` on the host before its change. */
export async function takeRollbackSet(
  t: HostTransport,
  host: string,
  paths: string[],
  unit: string,
  signal?: AbortSignal,
): Promise<RollbackSet> {
  const r = await sh(t, backupScript(paths), signal);
  const folder = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !FOLDER.test(folder)) {
    throw new K3sEtcdError(
      'provision-step-failed',
      `${host}: cannot keep a copy of its current files before the change (nothing was changed): ${r.stderr.trim() || `exit ${r.code}`}`,
    );
  }
  return { folder, paths, unit };
}

/** Puts the set back and restarts the service on it; the lines it printed, or throws. */
export async function restoreRollbackSet(
  t: HostTransport,
  host: string,
  set: RollbackSet,
  onLine?: (line: string) => void,
): Promise<void> {
  const r = await sh(t, restoreScript(set.folder, set.paths, set.unit));
  for (const l of r.stdout.split('\n').filter(Boolean)) onLine?.(l);
  if (r.code !== 0) {
    throw new K3sEtcdError(
      'provision-step-failed',
      `${host}: putting its previous files back failed: ${r.stderr.trim().split('\n').slice(-5).join(' ') || `exit ${r.code}`} (the copies are kept in ${set.folder})`,
    );
  }
}

/**
 * The script that keeps the previous version of each of `keep` (paths of the set) beside it as
 * `<path>.previous` (root-owned, 0755: a binary for a one-step rollback). A path that did not
 * exist before the change keeps nothing.
 */
export function keepPreviousScript(
  folder: string,
  paths: readonly string[],
  keep: readonly string[],
): string {
  if (!FOLDER.test(folder)) throw new Error(`not a rollback folder: ${folder}`);
  const lines = ['set -eu', `B=${q(folder)}`];
  paths.forEach((p, i) => {
    if (!keep.includes(p)) return;
    const prev = `${p}.previous`;
    const tmp = `${prev}.k3s-etcd-new`;
    lines.push(
      `if [ -f "$B/${i}" ] && [ ! -L "$B/${i}" ]; then cp "$B/${i}" ${q(tmp)} && chown root:root ${q(tmp)} && chmod 0755 ${q(tmp)} && mv -f ${q(tmp)} ${q(prev)} && echo ${q(`    kept the previous ${p} as ${prev}`)}; fi`,
    );
  });
  return `${lines.join('\n')}\n`;
}

/** Keeps the previous version of `keep` as `<path>.previous`; the lines it printed, or throws. */
export async function keepPrevious(
  t: HostTransport,
  host: string,
  set: RollbackSet,
  keep: readonly string[],
): Promise<string[]> {
  const r = await sh(t, keepPreviousScript(set.folder, set.paths, keep));
  if (r.code !== 0) {
    throw new K3sEtcdError(
      'provision-step-failed',
      `${host}: cannot keep the previous binaries as .previous: ${r.stderr.trim() || `exit ${r.code}`}`,
    );
  }
  return r.stdout.split('\n').filter(Boolean);
}

/** Removes the set once the member runs healthy on its new files. */
export async function dropRollbackSet(t: HostTransport, set: RollbackSet): Promise<void> {
  if (!FOLDER.test(set.folder)) return;
  await t.exec(`rm -rf ${q(set.folder)}`, { sudo: true }).catch(() => undefined);
}
