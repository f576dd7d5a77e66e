/**
 * Replacing a file so that a crash or a planted link never exposes or loses it: the new bytes go
 * to a fresh, randomly named file beside the target, created exclusively (an existing file or
 * link at that name is an error, never followed) with its final mode from the first byte; they
 * are flushed, then renamed over the target. A reader sees the old file or the new one, never an
 * empty or half-written one, and a symlink at the target is replaced, not written through.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** The file's mode. Default: the mode of the file being replaced, or 0600 for a new file. */
  mode?: number;
}

export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const mode =
    opts.mode ??
    (await stat(path).then(
      (s) => s.mode & 0o777,
      () => 0o600,
    ));
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.chmod(mode); // the umask may have narrowed it; never widened beyond `mode`
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
