/** Shell snippets the plans share (each renders to the same bytes wherever it is used). */
import { shellQuote as q } from '../ssh/quote';

/** Escapes text for inside a double-quoted shell word. */
export const dq = (text: string): string => text.replace(/[\\"$`]/g, '\\$&');

/**
 * The KB free on the file system of `dir` (a shell word, already quoted), as df's portable
 * output says it; `column` is awk's expression of its fourth field (`$4`, available KB).
 */
export const dfFree = (dir: string, column = '$4'): string =>
  `$(df -Pk ${dir} | awk 'NR==2 {print ${column}}')`;

/**
 * df on the nearest existing folder of `path` has at least `needKb` KB free; leaves that folder
 * in `$p` (for `FREE_MB`).
 */
export const spaceCheck = (path: string, needKb: number): string =>
  `p=${q(path)}; while [ ! -d "$p" ]; do p=$(dirname "$p"); done; [ "${dfFree('"$p"')}" -ge ${needKb} ]`;

/** The MB free under `$p` (set by `spaceCheck`), for a failure message. */
export const FREE_MB = dfFree('"$p"', 'int($4/1024)');

/** The last lines of a systemd unit's journal, never failing. */
export const journalTail = (unit: string, lines = 20): string =>
  `journalctl -u ${unit} -n ${lines} --no-pager 2>/dev/null || true`;

/**
 * How many exits of etcd (its unit restarts it every 5 s) a wait for it to be active tolerates:
 * one can be a port still held by the previous process; three in a row is a flag it rejects or
 * data it cannot start on, which the rest of the timeout would not change.
 */
export const ETCD_EXITS = 3;
