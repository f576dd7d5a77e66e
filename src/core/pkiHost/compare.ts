/**
 * The comparison, pure: what a host holds for one file against the workspace's copy and what
 * the member serves. Expiry is judged against `now` and the warning window, so a test can age a
 * certificate instead of waiting.
 */
import type { X509Certificate } from 'node:crypto';
import type { DeployedFile } from './files';
import { keyBelongsTo, parseCertificates, summarize, type CertSummary } from './pem';
import type { RawFile } from './read';
import type { Served } from './served';

export type Expiry = 'valid' | 'expiring' | 'expired' | 'not-yet-valid';

/** A certificate as checked: its facts, and how long it has left. */
export interface CheckedCert extends CertSummary {
  /** Milliseconds until notAfter (negative once expired). */
  msLeft: number;
  /** Whole days left, rounded down (negative once expired). */
  daysLeft: number;
  expiry: Expiry;
}

export interface ServedCheck {
  url: string;
  cert?: CheckedCert;
  /** The served leaf is the deployed file's certificate. */
  equalsDeployed?: boolean;
  clientCert: Served['clientCert'];
  error?: string;
}

export interface FileCheck {
  file: DeployedFile;
  /** What the host holds, or why it holds nothing usable. */
  state: 'ok' | 'missing' | 'not-a-file' | 'unreadable' | 'too-large' | 'invalid' | 'no-answer';
  /** Why it is not usable, in words (invalid PEM and the like). */
  problem?: string;
  /** The certificates of the deployed file (a CA bundle holds several), first = the leaf. */
  certs: CheckedCert[];
  /** The soonest expiry among them. */
  expiry?: Expiry;
  /** Leaves: whether the deployed key is the certificate's. */
  key?: 'matches' | 'mismatch' | 'invalid' | 'missing' | 'unreadable';
  /** Whether the deployed certificates are the workspace's (undefined when either is missing). */
  matchesWorkspace?: boolean;
  /** The workspace file's certificate (the first), for the words of a drift. */
  workspace?: CheckedCert;
  /** Leaves: whether the workspace CA signed the deployed certificate. */
  signedByCa?: boolean;
  served?: ServedCheck;
}

export interface HostCheck {
  host: string;
  roles: string[];
  /** The host could not be read at all (SSH, sudo). */
  error?: string;
  files: FileCheck[];
}

/** What the workspace holds for each of its files: the certificates, or why it has none. */
export type WorkspaceFiles = ReadonlyMap<string, X509Certificate[] | { problem: string }>;

const DAY = 86_400_000;

export function checkCert(cert: X509Certificate, now: Date, warnDays: number): CheckedCert {
  const s = summarize(cert);
  const msLeft = Date.parse(s.notAfter) - now.getTime();
  const daysLeft = Math.floor(msLeft / DAY);
  const expiry: Expiry =
    now.getTime() < Date.parse(s.notBefore)
      ? 'not-yet-valid'
      : msLeft <= 0
        ? 'expired'
        : msLeft < warnDays * DAY
          ? 'expiring'
          : 'valid';
  return { ...s, msLeft, daysLeft, expiry };
}

const RANK: Record<Expiry, number> = { expired: 3, 'not-yet-valid': 2, expiring: 1, valid: 0 };

function worst(certs: readonly CheckedCert[]): Expiry | undefined {
  return certs.reduce<Expiry | undefined>(
    (w, c) => (w === undefined || RANK[c.expiry] > RANK[w] ? c.expiry : w),
    undefined,
  );
}

export interface CompareInput {
  file: DeployedFile;
  raw: RawFile;
  /** The key file's raw content (leaves). */
  rawKey?: RawFile;
  workspace: WorkspaceFiles;
  /** The workspace CA, to check who signed a deployed leaf. */
  ca?: X509Certificate;
  served?: Served;
  now: Date;
  warnDays: number;
}

export function compareFile(input: CompareInput): FileCheck {
  const { file, raw, rawKey, now, warnDays } = input;
  const ws = input.workspace.get(file.workspacePath);
  const wsCerts = Array.isArray(ws) ? ws : undefined;
  const out: FileCheck = { file, state: 'ok', certs: [] };
  if (wsCerts?.[0]) out.workspace = checkCert(wsCerts[0], now, warnDays);
  if (raw.state !== 'file') {
    out.state = raw.state;
    return out;
  }
  const parsed = parseCertificates(raw.text);
  if (!parsed.ok) {
    out.state = 'invalid';
    out.problem = parsed.problem;
    return out;
  }
  const certs = parsed.value;
  const leaf = certs[0]!;
  out.certs = certs.map((c) => checkCert(c, now, warnDays));
  const w = worst(out.certs);
  if (w) out.expiry = w;
  if (wsCerts) {
    const a = certs.map((c) => c.fingerprint256).join(',');
    const b = wsCerts.map((c) => c.fingerprint256).join(',');
    out.matchesWorkspace = a === b;
  }
  if (file.kind !== 'ca' && input.ca)
    out.signedByCa = leaf.checkIssued(input.ca) && leaf.verify(input.ca.publicKey);
  if (file.hostKeyPath && rawKey) {
    out.key =
      rawKey.state === 'file'
        ? keyBelongsTo(rawKey.text, leaf)
        : rawKey.state === 'missing'
          ? 'missing'
          : rawKey.state === 'too-large'
            ? 'invalid'
            : 'unreadable';
  }
  if (file.servedAt && input.served) {
    const s = input.served;
    out.served = {
      url: s.url,
      clientCert: s.clientCert,
      ...(s.cert
        ? {
            cert: checkCert(s.cert, now, warnDays),
            equalsDeployed: s.cert.fingerprint256 === leaf.fingerprint256,
          }
        : {}),
      ...(s.error ? { error: s.error } : {}),
    };
  }
  return out;
}
