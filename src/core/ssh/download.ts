/**
 * A host's file brought to this machine over SSH, read as root: streamed into a new file here
 * (created exclusively, 0600), hashed as the bytes arrive.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { SshSession } from './session';

/** Streams a host file into a new 0600 file here, hashing as the bytes arrive. */
export async function downloadFile(
  t: SshSession,
  from: string,
  to: string,
  opts: { signal?: AbortSignal; onBytes?(n: number): void },
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  // Created here, exclusively: never an existing file or a link in its place.
  const fh = await open(to, 'wx', 0o600);
  const out = fh.createWriteStream();
  // A local write that fails (disk full) stops the remote read too, instead of leaving it
  // paused by backpressure forever.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let writeError: Error | undefined;
  out.on('error', (err) => {
    writeError = err;
    stop.abort();
  });
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      opts.onBytes?.(bytes);
      done(null, chunk);
    },
  });
  tap.pipe(out);
  try {
    await t.readFileStream(from, tap, { signal: stop.signal });
    tap.end();
    await finished(out);
  } catch (err) {
    out.destroy();
    throw writeError ?? err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await fh.close().catch(() => undefined);
  }
  if (writeError) throw writeError;
  return { bytes, sha256: hash.digest('hex') };
}
