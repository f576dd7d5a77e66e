/**
 * The VS Code server's connection token: without it the server answers 403 to every request, so
 * another local user cannot open the workbench (and its terminal, which runs as the server's
 * user: root in the lab). The token is random, kept in a file only its owner can read (0600),
 * handed to the server with `--connection-token-file`, and carried by the workbench URL
 * (`?tkn=...`; the server then keeps it in a cookie).
 *
 * Plain JavaScript so that scripts/dev-web.sh can run it directly:
 *   node scripts/lab/connectionToken.mjs FILE   prints the token of FILE (made when needed)
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What VS Code accepts as a token (it refuses anything else), long enough not to be guessed. */
export const TOKEN_PATTERN = /^[0-9A-Za-z_-]{32,}$/;

export function newConnectionToken() {
  return randomBytes(32).toString('base64url');
}

/** The token already in `file`, when it is a regular file of ours that nobody else could read. */
function reusable(file) {
  let st;
  try {
    st = lstatSync(file);
  } catch {
    return undefined;
  }
  const ours = process.getuid === undefined || st.uid === process.getuid();
  if (!st.isFile() || !ours || (st.mode & 0o077) !== 0) return undefined;
  const token = readFileSync(file, 'utf8').trim();
  return TOKEN_PATTERN.test(token) ? token : undefined;
}

/**
 * Returns the token kept in `file`, writing a new one first unless the file is a regular file of
 * ours, mode 0600, holding a valid token (a token another user could have read is replaced).
 * A new file is 0600 from its first byte and replaces the old one atomically (never a symlink
 * followed).
 */
export function ensureConnectionTokenFile(file) {
  const existing = reusable(file);
  if (existing !== undefined) return existing;
  const token = newConnectionToken();
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${token}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    chmodSync(tmp, 0o600); // whatever the umask
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return token;
}

/** `url` with the token as its first query parameter. */
export function withToken(url, token) {
  const u = new URL(url);
  const rest = u.search.replace(/^\?/, '');
  return `${u.origin}${u.pathname}?tkn=${token}${rest ? `&${rest}` : ''}`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node scripts/lab/connectionToken.mjs FILE\n');
    process.exit(2);
  }
  process.stdout.write(`${ensureConnectionTokenFile(resolve(file))}\n`);
}
