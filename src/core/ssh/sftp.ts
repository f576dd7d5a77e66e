/**
 * File transfer: a file put in place as root through no path another user controls (the bytes
 * stream over a command's stdin into a fresh root-only folder beside the destination, checked
 * there, then renamed over it), and a plain SFTP upload as the SSH user.
 */
import { dirname } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { CancelledError, errorMessage } from '../errors';
import { shellQuote } from './quote';
import { sshError, type PutOptions, type TransferOptions } from './types';

/**
 * The command that moves the bytes on its stdin into place as root with owner and mode,
 * atomically: the new file is made in a fresh folder only root can enter (mktemp -d beside
 * `dest`, worked in relative to itself), owner and mode set there, then renamed over `dest` with
 * `mv -T`, so a symlink at `dest` or planted anywhere in its folder (a folder the etcd user owns,
 * say) is replaced, never followed. With `sha256`, the bytes are checked before.
 */
export function installCommand(dest: string, opts: PutOptions & { sha256?: string }): string {
  const owner = opts.owner ?? 'root';
  const group = opts.group ?? owner;
  const q = shellQuote;
  const check = opts.sha256 ? ` && [ "$(sha256sum new | cut -d' ' -f1)" = ${opts.sha256} ]` : '';
  return [
    `d=${q(dirname(dest))}`,
    'mkdir -p "$d" && w=$(mktemp -d "$d/.k3s-etcd-XXXXXXXX") && cd "$w" || exit 1',
    'ok=0',
    `if [ "$(stat -c '%u %a' .)" = "0 700" ] && cat > new${check} && chown ${q(`${owner}:${group}`)} new && chmod ${(opts.mode & 0o7777).toString(8).padStart(4, '0')} new && mv -fT new ${q(dest)}; then ok=1; fi`,
    'rm -f new; cd / && rmdir "$w" 2>/dev/null',
    '[ "$ok" = 1 ]',
  ].join('\n');
}

/** Uploads a local file or bytes to `remotePath` over `sftp` as the SSH user (mode 0600). */
export async function sftpPut(
  channel: () => Promise<SFTPWrapper>,
  label: string,
  remotePath: string,
  source: { localPath: string } | { data: Buffer },
  opts: TransferOptions = {},
): Promise<void> {
  if (opts.signal?.aborted) throw new CancelledError('upload');
  const sftp = await channel().catch((err: unknown) => {
    throw sshError(
      'ssh-disconnected',
      `SFTP is not available on ${label} (${errorMessage(err)}): enable the sftp subsystem in sshd_config.`,
      err,
    );
  });
  let cancelled = false;
  const onAbort = () => {
    // Ends the SFTP channel: the transfer in flight fails at once (the caller opens another).
    cancelled = true;
    sftp.end();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  await new Promise<void>((resolve, reject) => {
    const done = (err: Error | null | undefined) => (err ? reject(err) : resolve());
    if ('localPath' in source)
      sftp.fastPut(
        source.localPath,
        remotePath,
        {
          mode: 0o600,
          ...(opts.onBytes
            ? { step: (sent: number, _c: number, total: number) => opts.onBytes?.(sent, total) }
            : {}),
        },
        done,
      );
    else sftp.writeFile(remotePath, source.data, { mode: 0o600 }, done);
  })
    .finally(() => opts.signal?.removeEventListener('abort', onAbort))
    .catch((err: unknown) => {
      if (cancelled) throw new CancelledError('upload');
      const text = errorMessage(err);
      const full = /no space|failure/i.test(text)
        ? ' (is the disk full? check `df -h /tmp` on the host)'
        : '';
      throw sshError(
        'ssh-disconnected',
        `Upload to ${label}:${remotePath} failed: ${text}${full}`,
        err,
      );
    });
}
