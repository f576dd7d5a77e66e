/**
 * Reads a host's deployed certificate files in one root batch over SSH: each path quoted, each
 * file cut at MAX_PEM_BYTES, framed by marker lines carrying a random nonce (a file cannot fake
 * the next file's frame), and the whole output bounded. What comes back is only split here; the
 * parsing is `pem.ts`'s.
 */
import { randomBytes } from 'node:crypto';
import { boundedOutput } from '../ssh/boundedOutput';
import { errorMessage, isCancelled } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { shellQuote as q } from '../ssh/quote';
import { MAX_PEM_BYTES } from './pem';

/** What the host said of one path. */
export type RawFile =
  | { state: 'file'; text: string; size: number }
  | { state: 'missing' | 'not-a-file' | 'unreadable' | 'too-large' | 'no-answer' };

/** The batch: `emit N PATH` per path, then an end marker. */
export function readScript(paths: readonly string[], nonce: string): string {
  const mark = `@@${nonce}`;
  return [
    'emit() {',
    `  if [ ! -e "$2" ]; then echo "${mark} $1 missing"`,
    `  elif [ ! -f "$2" ]; then echo "${mark} $1 not-a-file"`,
    `  elif ! s=$(wc -c < "$2" 2>/dev/null); then echo "${mark} $1 unreadable"`,
    `  else echo "${mark} $1 size $s"; head -c ${MAX_PEM_BYTES} -- "$2"; echo; fi`,
    '}',
    ...paths.map((p, i) => `emit ${i} ${q(p)}`),
    `echo "${mark} end"`,
  ].join('\n');
}

/** Splits the batch's output back into files, by index; a path not framed is 'no-answer'. */
export function parseRead(out: string, count: number, nonce: string): RawFile[] {
  const files: RawFile[] = Array.from({ length: count }, () => ({ state: 'no-answer' as const }));
  const frame = new RegExp(
    `^@@${nonce} (\\d{1,3}) (missing|not-a-file|unreadable|size +(\\d{1,12}))$`,
  );
  const end = `@@${nonce} end`;
  let current: { i: number; size: number; lines: string[] } | undefined;
  const close = () => {
    if (!current) return;
    const text = current.lines.join('\n').replace(/\n$/, '');
    files[current.i] =
      current.size > MAX_PEM_BYTES
        ? { state: 'too-large' }
        : { state: 'file', text, size: current.size };
    current = undefined;
  };
  let ended = false;
  for (const line of out.split('\n')) {
    if (line === end) {
      close();
      ended = true;
      break;
    }
    const m = frame.exec(line);
    if (m) {
      close();
      const i = Number(m[1]);
      if (i >= count) continue;
      if (m[3] !== undefined) current = { i, size: Number(m[3]), lines: [] };
      else files[i] = { state: m[2] as 'missing' | 'not-a-file' | 'unreadable' };
    } else current?.lines.push(line);
  }
  // Cut short: the last file's frame is not trusted.
  if (!ended && current) files[current.i] = { state: 'no-answer' };
  return files;
}

/** The most one host's batch may print (every file at its bound, and the frames). */
const MAX_OUTPUT = 16 * (MAX_PEM_BYTES + 256);

export interface HostRead {
  files?: RawFile[];
  /** The host could not be read at all. */
  error?: string;
}

/** One SSH connection, one root batch. Never throws for the host's sake: says why in `error`. */
export async function readHostFiles(
  cluster: Cluster,
  host: Host,
  paths: readonly string[],
  ssh: SshContext,
  signal?: AbortSignal,
): Promise<HostRead> {
  const nonce = randomBytes(12).toString('hex');
  const out = boundedOutput(MAX_OUTPUT, signal);
  try {
    const session = await sshOpener(cluster, host, ssh)(signal);
    try {
      const r = await session.exec(readScript(paths, nonce), {
        sudo: true,
        signal: out.signal,
        stdoutStream: out.sink,
      });
      if (r.code !== 0) return { error: `reading the files as root failed (exit ${r.code})` };
      return { files: parseRead(out.text(), paths.length, nonce) };
    } finally {
      session.close();
    }
  } catch (err) {
    if (out.overflow)
      return { error: `it printed more than ${MAX_OUTPUT} bytes for ${paths.length} files` };
    if (isCancelled(err) && signal?.aborted) throw err;
    return { error: `cannot read its certificates over SSH (${errorMessage(err)})` };
  } finally {
    out.dispose();
  }
}
