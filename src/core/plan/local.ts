/**
 * When VS Code is connected to an edge host with Remote-SSH, the extension (a workspace
 * extension) runs on that host: the host is provisioned in its own terminal, with the same
 * script, instead of over SSH to itself.
 */
import { shellQuote as q } from '../ssh/quote';

/**
 * The shell command a terminal runs for a script written to `scriptPath` (sudo asks there): a
 * dry run first, then a question, then the real run; the staging folder (private keys) is
 * removed whatever happens.
 */
export function terminalCommand(scriptPath: string, stage: string): string {
  const run = (dry: 0 | 1) => `$SUDO env DRY_RUN=${dry} STAGE=${q(stage)} sh ${q(scriptPath)}`;
  return [
    `trap 'rm -rf ${q(stage).replace(/'/g, `'\\''`)}' EXIT HUP INT TERM`,
    'SUDO=; if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi',
    `if ${run(1)}; then printf 'Apply these changes? [y/N] '; read -r answer; case "$answer" in y|Y|yes) ${run(0)} ;; *) echo 'Nothing changed.'; false ;; esac; fi`,
    `rc=$?; rm -rf ${q(stage)}; exit $rc`,
  ].join('; ');
}

/** `cmd` as root when that needs no password (root already, or password-less sudo), else as is. */
export function asRootIfPossible(cmd: string): string {
  return `if [ "$(id -u)" = 0 ]; then sh -c ${q(cmd)}; elif sudo -n true 2>/dev/null; then sudo -n sh -c ${q(cmd)}; else sh -c ${q(cmd)}; fi`;
}
