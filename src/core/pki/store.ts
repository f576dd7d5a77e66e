/**
 * Writes a certificate set so that nothing is ever half-written: every file is first written to
 * a temporary name next to its target (keys 0600, certificates 0644); only when all of them are
 * on disk are they renamed into place, existing targets moved aside first. A failure at any
 * point puts back what was there and removes the temporaries.
 */
import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { PkiError } from '../errors';
import { certInfo, fileSha256, parseCertificate, type CertInfo } from './inspect';

export interface FileToWrite {
  /** Absolute path. */
  path: string;
  content: string;
  mode: 0o600 | 0o644;
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export async function writeAtomically(files: readonly FileToWrite[], root: string): Promise<void> {
  const staged: Array<{ tmp: string; path: string }> = [];
  try {
    for (const f of files) {
      await mkdir(dirname(f.path), { recursive: true, mode: 0o755 });
      const tmp = `${f.path}.tmp-${randomBytes(4).toString('hex')}`;
      await writeFile(tmp, f.content, { mode: f.mode, flag: 'wx' });
      await chmod(tmp, f.mode); // the umask may have narrowed the mode
      staged.push({ tmp, path: f.path });
    }
  } catch (err) {
    await Promise.all(staged.map((s) => rm(s.tmp, { force: true })));
    const e = err as NodeJS.ErrnoException;
    throw new PkiError(
      'not-writable',
      `cannot write certificates under ${root}: ${e.code ?? ''} ${e.message}. Nothing was written; ` +
        'choose a writable folder (pki.dir in the inventory) or fix its permissions.',
      { cause: err },
    );
  }
  const done: Array<{ path: string; backup?: string }> = [];
  try {
    for (const s of staged) {
      const backup = (await exists(s.path))
        ? `${s.path}.bak-${randomBytes(4).toString('hex')}`
        : undefined;
      if (backup) await rename(s.path, backup);
      done.push(backup ? { path: s.path, backup } : { path: s.path });
      await rename(s.tmp, s.path);
    }
  } catch (err) {
    for (const d of done.reverse()) {
      await rm(d.path, { recursive: false, force: true }).catch(() => undefined);
      if (d.backup) await rename(d.backup, d.path).catch(() => undefined);
    }
    await Promise.all(staged.map((s) => rm(s.tmp, { force: true })));
    const e = err as NodeJS.ErrnoException;
    throw new PkiError(
      'not-writable',
      `cannot put certificates in place under ${root}: ${e.code ?? ''} ${e.message}. Nothing was changed.`,
      { cause: err },
    );
  }
  await Promise.all(done.filter((d) => d.backup).map((d) => rm(d.backup ?? '', { force: true })));
}

export type FileKind = 'ca' | 'server' | 'peer' | 'client';

export interface IndexEntry extends CertInfo {
  /** Relative to the pki folder, `/`-separated. */
  path: string;
  keyPath: string;
  kind: FileKind;
  member?: string;
  name: string;
  /** SHA-256 of the certificate file's bytes (hex). */
  fileSha256: string;
}

export interface PkiIndex {
  version: 1;
  cluster: string;
  generatedAt: string;
  entries: IndexEntry[];
}

export const INDEX_FILE = 'index.json';

export interface KnownFile {
  path: string;
  keyPath: string;
  kind: FileKind;
  member?: string;
  name: string;
}

/** Re-reads every certificate that exists and writes index.json (atomically). */
export async function writeIndex(
  dir: string,
  cluster: string,
  known: readonly KnownFile[],
  now = new Date(),
): Promise<PkiIndex> {
  const entries: IndexEntry[] = [];
  for (const k of known) {
    let pem: string;
    try {
      pem = await readFile(join(dir, k.path), 'utf8');
    } catch {
      continue;
    }
    const info = certInfo(parseCertificate(pem), now);
    entries.push({ ...info, ...k, fileSha256: fileSha256(pem) });
  }
  const index: PkiIndex = { version: 1, cluster, generatedAt: now.toISOString(), entries };
  await writeAtomically(
    [{ path: join(dir, INDEX_FILE), content: `${JSON.stringify(index, null, 2)}\n`, mode: 0o644 }],
    dir,
  );
  return index;
}

export async function readIndex(dir: string): Promise<PkiIndex | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as PkiIndex;
    return parsed.version === 1 && Array.isArray(parsed.entries) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export function rel(dir: string, path: string): string {
  return relative(dir, path).split('\\').join('/');
}

/**
 * What a write put on disk, counted as the tree counts it (certificates) and as files:
 * "9 certificates and their keys (18 files)", "1 certificate and its key (2 files)".
 */
export function writtenText(written: readonly string[]): string {
  const keys = written.filter((p) => /(^|[/\\])[^/\\]*key\.pem$/.test(p)).length;
  const certs = written.filter((p) => /\.pem$/.test(p)).length - keys;
  const files = `${written.length} file${written.length === 1 ? '' : 's'}`;
  const c = `${certs} certificate${certs === 1 ? '' : 's'}`;
  if (certs > 0 && keys === certs)
    return `${c} and ${certs === 1 ? 'its key' : 'their keys'} (${files})`;
  if (certs > 0 || keys > 0) return `${c} and ${keys} key${keys === 1 ? '' : 's'} (${files})`;
  return files;
}
