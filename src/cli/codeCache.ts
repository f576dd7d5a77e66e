/**
 * dist/cli.js runs the command line's bundle (dist/cliMain.js) with V8's code cache, like
 * v8-compile-cache: Node 20 keeps no compiled code between runs, so every call would parse and
 * compile the bundle again. The cache is one file per bundle in a folder the user owns
 * ($XDG_CACHE_HOME/k3s-etcd or ~/.cache/k3s-etcd, created 0700); a folder or file that is not
 * the user's own, or that others can write, is not used; a cache V8 rejects (another Node, a
 * corrupt file) is written again, atomically, after the command ran; nothing here ever fails the
 * command. K3S_ETCD_NO_CODE_CACHE=1 turns it off.
 * The cache holds the functions the commands ran (V8 compiles a function when it first runs): it
 * is written again after the first run of each command, so it grows to the commands the user runs
 * (members, then status, ...). Its first line names them.
 */
import {
  fstatSync,
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import Module from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { Script } from 'node:vm';

export const CODE_CACHE_OFF = 'K3S_ETCD_NO_CODE_CACHE';

/** Only the user's own, and nobody else can write it. */
function private_(st: Stats, uid: number): boolean {
  return st.uid === uid && (st.mode & 0o022) === 0;
}

/** The user's cache folder for k3s-etcd (created 0700), or undefined when it is not safe to use. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  const xdg = env['XDG_CACHE_HOME'];
  const home = env['HOME'];
  const base = xdg && isAbsolute(xdg) ? xdg : home && isAbsolute(home) ? join(home, '.cache') : '';
  if (!base) return undefined;
  const dir = join(base, 'k3s-etcd');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    return st.isDirectory() && private_(st, uid) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** A short, stable name for a path (FNV-1a): one cache per installed bundle. */
function pathKey(path: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36);
}

/**
 * The cache file of this bundle as it is now: another Node, another architecture or another
 * build of the bundle (size, mtime, inode) is another file.
 */
export function codeCacheFile(dir: string, bundle: string, st: Stats): string {
  const build = [st.size, Math.floor(st.mtimeMs), st.ino].join('-');
  return join(dir, `${pathKey(bundle)}-${process.version}-${process.arch}-${build}.v8`);
}

const MAGIC = 'k3s-etcd-code-cache';
const MAX_COMMANDS = 32;

export interface CodeCache {
  /** The commands whose functions it holds. */
  commands: string[];
  data: Buffer;
}

/** The file's bytes: a first line (MAGIC and the commands it holds), then V8's data. */
export function encodeCodeCache(cache: CodeCache): Buffer {
  return Buffer.concat([Buffer.from(`${MAGIC} ${cache.commands.join(',')}\n`), cache.data]);
}

export function decodeCodeCache(bytes: Buffer): CodeCache | undefined {
  const nl = bytes.indexOf(0x0a);
  if (nl < 0 || nl > 2048) return undefined;
  const [magic, list = ''] = bytes.subarray(0, nl).toString('latin1').split(' ');
  if (magic !== MAGIC) return undefined;
  return { commands: list ? list.split(',') : [], data: bytes.subarray(nl + 1) };
}

/** The cache, when the file is the user's own and nobody else can write it. */
export function readCodeCache(file: string): CodeCache | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const st = fstatSync(fd);
    if (!st.isFile() || !private_(st, uid)) return undefined;
    return decodeCodeCache(readFileSync(fd));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes the cache atomically (a temporary file renamed over it) and drops the bundle's older ones. */
export function writeCodeCache(file: string, cache: CodeCache): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, encodeCodeCache(cache), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
    const dir = dirname(file);
    const name = file.slice(dir.length + 1);
    const prefix = name.slice(0, name.indexOf('-') + 1);
    for (const other of readdirSync(dir))
      if (other !== name && other.startsWith(prefix) && other.endsWith('.v8'))
        unlinkSync(join(dir, other));
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was written
    }
  }
}

/** The word a cache remembers a run by: the command's first word (`members`, `inventory`). */
export function commandKey(argv: readonly string[]): string {
  const word = argv.find((a) => !a.startsWith('-'));
  return word !== undefined && /^[a-z][a-z-]{0,31}$/.test(word) ? word : '-';
}

/**
 * Runs a CommonJS bundle like `require` would (its `exports`, `require`, `module`, `__filename`,
 * `__dirname`), compiled with the code cache when there is a usable one; returns its exports.
 * Without a usable cache, or when this command has not run with it yet, the cache is written when
 * the process exits (the functions the command ran are compiled by then, so it holds them too).
 */
export function runCachedBundle(
  file: string,
  command: string,
  env: NodeJS.ProcessEnv = process.env,
): unknown {
  const source = readFileSync(file, 'utf8');
  let cacheFile: string | undefined;
  if (!env[CODE_CACHE_OFF]) {
    const dir = codeCacheDir(env);
    try {
      if (dir) cacheFile = codeCacheFile(dir, file, statSync(file));
    } catch {
      cacheFile = undefined;
    }
  }
  const cache = cacheFile ? readCodeCache(cacheFile) : undefined;
  const script = new Script(Module.wrap(source), {
    filename: file,
    ...(cache ? { cachedData: cache.data } : {}),
  });
  const known = cache && !script.cachedDataRejected ? cache.commands : [];
  if (cacheFile && !known.includes(command) && known.length < MAX_COMMANDS) {
    const to = cacheFile;
    process.once('exit', () => {
      try {
        writeCodeCache(to, { commands: [...known, command], data: script.createCachedData() });
      } catch {
        // a cache is an optimisation: never fail the command for it
      }
    });
  }
  const module = { exports: {} as unknown };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(
    module.exports,
    module.exports,
    Module.createRequire(file),
    module,
    file,
    dirname(file),
  );
  return module.exports;
}
