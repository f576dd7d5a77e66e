/** SHA-256 of a local file, streamed (snapshots and binaries are large). */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** The file's SHA-256 (hex) and its size in bytes. */
export async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    createReadStream(file)
      .on('data', (d) => {
        hash.update(d);
        bytes += (d as Buffer).byteLength;
      })
      .on('error', reject)
      .on('end', () => resolve());
  });
  return { sha256: hash.digest('hex'), bytes };
}
