/**
 * What `certs check` found, in words that say what to do with the commands that exist today:
 * `certs renew` re-issues leaves under the same CA and rolls them out one host at a time,
 * `certs rotate-ca` replaces the CA without an outage (and, once begun, is the only way on for
 * every certificate file: hosts it has not reached are told to go on with it, never to deploy
 * the workspace's files by hand), `provision etcd` / `k3s install` put a missing or broken file
 * or a member's settings back (and restart).
 */
import { ENV_FILE } from '../etcd/memberHost';
import type { Phase } from '../pki/rotationState';
import type { CheckedCert, FileCheck, HostCheck } from './compare';

export type FindingCode =
  | 'unreachable'
  | 'missing'
  | 'unreadable'
  | 'expired'
  | 'expiring'
  | 'not-yet-valid'
  | 'drift'
  | 'workspace-missing'
  | 'key-mismatch'
  | 'served-differs'
  | 'served-unreadable'
  | 'no-client-auth';

export interface Finding {
  host: string;
  /** The host path the finding is about (absent for a host that could not be read). */
  path?: string;
  code: FindingCode;
  /** What is wrong. */
  text: string;
  /** What to do about it. */
  action: string;
}

/** An ongoing CA rotation as `certs check` tells it: the phase and the hosts that finished it. */
export interface RotationFacts {
  /** Undefined when rotation.json cannot be used (`certs rotate-ca` says why). */
  phase?: Phase;
  /** Member hosts and K3s server hosts that finished the current phase. */
  members: string[];
  k3sServers: string[];
}

const DAY = 86_400_000;

/** "4 min", "5 h", "12 days". */
export function spanWords(ms: number): string {
  const a = Math.abs(ms);
  if (a < 2 * 3_600_000) return `${Math.max(0, Math.round(a / 60_000))} min`;
  if (a < 2 * DAY) return `${Math.round(a / 3_600_000)} h`;
  return `${Math.floor(a / DAY)} days`;
}

/** "2026-03-01 12:00 UTC" */
export function dateWords(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/** The time left of a certificate: "expires in 4 min", "EXPIRED 3 days ago", "1824 days left". */
export function leftWords(c: Pick<CheckedCert, 'msLeft' | 'expiry' | 'notBefore'>): string {
  if (c.expiry === 'expired') return `EXPIRED ${spanWords(c.msLeft)} ago`;
  if (c.expiry === 'not-yet-valid') return `not valid before ${dateWords(c.notBefore)}`;
  if (c.expiry === 'expiring') return `expires in ${spanWords(c.msLeft)}`;
  return `${Math.floor(c.msLeft / DAY)} days left`;
}

/** The first 8 bytes of a SHA-256 fingerprint (`AB:CD:…:EF`), shown with "…" after it. */
export const short = (fp: string) => fp.slice(0, 23);

/** How today's commands put the workspace's copy of this file on its host (and restart). */
function deployAction(f: FileCheck): string {
  return f.file.role === 'etcd'
    ? `deploy the workspace's files with \`k3s-etcd provision etcd --host ${f.file.host}\` (it restarts that member, one at a time)`
    : `deploy the workspace's files with \`k3s-etcd k3s install --host ${f.file.host}\` (it restarts K3s there and waits for Ready)`;
}

/** How today's commands re-issue a leaf under the same CA and roll it out. */
function renewAction(f: FileCheck): string {
  return f.file.role === 'etcd'
    ? `re-issue it under the same CA and roll it out with \`k3s-etcd certs renew --member ${f.file.member ?? f.file.host}\` (that member's server and peer certificates, its restart with a health check, no outage)`
    : "re-issue it under the same CA and roll it out with `k3s-etcd certs renew --k3s` (the members' certificates one member at a time, then K3s's datastore client on each K3s server, restarted and Ready before the next)";
}

/** The CA ends every certificate under it: a new one, rolled out in phases. */
function caAction(f: FileCheck): string {
  if (f.expiry === 'expired')
    return "with the CA expired no host accepts another's certificate, and a rotation needs a running cluster: make a new CA (`k3s-etcd certs import-ca`, or move ca.pem and ca-key.pem aside and `k3s-etcd certs generate`), then deploy every host (`k3s-etcd provision etcd`, `k3s-etcd k3s install`)";
  return 'replace the CA without an outage with `k3s-etcd certs rotate-ca` (three confirmed phases, one host at a time: trust both CAs, re-issue every certificate under the new one, trust only the new one)';
}

/** During a CA rotation every certificate file goes on through `certs rotate-ca`. */
function rotationAction(f: FileCheck, rot: RotationFacts): string {
  const phase = rot.phase ? ` (phase ${rot.phase} of 3)` : '';
  const done = (f.file.role === 'etcd' ? rot.members : rot.k3sServers).includes(f.file.host);
  return done
    ? `a CA rotation is under way${phase} and ${f.file.host} finished this phase: finish the rotation with \`k3s-etcd certs rotate-ca\` (its phase 2 re-issues every certificate under the new CA; \`certs renew\` is refused until it ends)`
    : `a CA rotation is under way${phase} and ${f.file.host} has not finished this phase: go on with \`k3s-etcd certs rotate-ca\`, which continues with the hosts not done (not \`provision etcd\` or \`k3s install\`, which would put the workspace's files there out of step with the rotation)`;
}

function expiryFinding(
  f: FileCheck,
  at: string,
  warnDays: number,
  rot: RotationFacts | undefined,
): Finding | undefined {
  const c = [...f.certs].sort((a, b) => a.msLeft - b.msLeft)[0];
  if (!c || !f.expiry || f.expiry === 'valid') return undefined;
  const what = `${at}: ${f.file.name}${f.certs.length > 1 ? ` (${c.cn})` : ''}`;
  // The workspace holds a newer one than the host: deploying it as it is would do too.
  const ws = f.workspace;
  const fresher = f.matchesWorkspace === false && ws && ws.expiry === 'valid';
  const action = rot
    ? rotationAction(f, rot)
    : f.file.kind === 'ca'
      ? fresher
        ? `the workspace holds a newer one (${leftWords(ws)}): ${deployAction(f)}`
        : caAction(f)
      : fresher
        ? `the workspace holds a newer one (${leftWords(ws)}) that ${f.file.host} does not: ${renewAction(f)}; or ${deployAction(f)}`
        : renewAction(f);
  if (f.expiry === 'expired')
    return {
      host: f.file.host,
      path: f.file.hostPath,
      code: 'expired',
      text: `${what} EXPIRED on ${dateWords(c.notAfter)}`,
      action,
    };
  if (f.expiry === 'not-yet-valid')
    return {
      host: f.file.host,
      path: f.file.hostPath,
      code: 'not-yet-valid',
      text: `${what} is not valid before ${dateWords(c.notBefore)} (is the clock of this machine or of the issuer wrong?)`,
      action,
    };
  return {
    host: f.file.host,
    path: f.file.hostPath,
    code: 'expiring',
    text: `${what} expires in ${spanWords(c.msLeft)} (${dateWords(c.notAfter)}), within the ${warnDays}-day warning window`,
    action,
  };
}

/**
 * One file's findings. `rotation`: the CA rotation under way (rotation.json exists), which every
 * certificate file's finding then points to instead of renewing or deploying.
 */
export function fileFindings(f: FileCheck, warnDays: number, rotation?: RotationFacts): Finding[] {
  const at = `${f.file.host} ${f.file.hostPath}`;
  const base = { host: f.file.host, path: f.file.hostPath };
  const out: Finding[] = [];
  const or = (action: string) => (rotation ? rotationAction(f, rotation) : action);
  if (f.state === 'missing')
    return [
      {
        ...base,
        code: 'missing',
        text: `${at} (${f.file.name}) is missing`,
        action: or(deployAction(f)),
      },
    ];
  if (f.state !== 'ok')
    return [
      {
        ...base,
        code: 'unreadable',
        text: `${at} (${f.file.name}) is not a usable certificate file: ${f.problem ?? f.state.replace(/-/g, ' ')}`,
        action: or(deployAction(f)),
      },
    ];
  const e = expiryFinding(f, at, warnDays, rotation);
  if (e) out.push(e);
  if (f.matchesWorkspace === undefined)
    out.push({
      ...base,
      code: 'workspace-missing',
      text: `the workspace has no ${f.file.workspacePath} to compare ${at} with`,
      action: or(
        "generate the set with `k3s-etcd certs generate` (or bring back the workspace's pki folder)",
      ),
    });
  else if (!f.matchesWorkspace) {
    const d = f.certs[0]!;
    const w = f.workspace;
    out.push({
      ...base,
      code: 'drift',
      text:
        `${at} differs from the workspace's ${f.file.workspacePath}: deployed ${short(d.sha256)}… (${d.cn}, until ${dateWords(d.notAfter)}` +
        `${f.signedByCa === false ? ', NOT signed by the workspace CA' : ''})` +
        (w ? `, workspace ${short(w.sha256)}… (until ${dateWords(w.notAfter)})` : ''),
      action: or(
        `if the workspace is right, ${f.file.kind === 'ca' ? deployAction(f) : renewAction(f)}; if the host's file is the one to keep, the workspace is out of date`,
      ),
    });
  }
  if (f.key && f.key !== 'matches')
    out.push({
      ...base,
      code: 'key-mismatch',
      text: `${f.file.host} ${f.file.hostKeyPath ?? ''} ${f.key === 'mismatch' ? 'does not belong to' : f.key === 'missing' ? 'is missing beside' : 'is not a readable private key for'} ${f.file.hostPath}`,
      action: or(deployAction(f)),
    });
  const s = f.served;
  if (s?.error)
    out.push({
      ...base,
      code: 'served-unreadable',
      text: `${f.file.member ?? f.file.host}'s certificate on ${s.url} could not be read: ${s.error}`,
      action: `is etcd running on ${f.file.host}? \`k3s-etcd health\` says; the check could not compare what it serves`,
    });
  else if (s?.cert && s.equalsDeployed === false)
    out.push({
      ...base,
      code: 'served-differs',
      // etcd reads its certificate files again on every new connection: a member serving
      // another certificate is not using the file (its settings name another, or another
      // process answers on the port), not merely waiting for a restart.
      text: `${f.file.member ?? f.file.host} serves another certificate on ${s.url} than ${f.file.hostPath}: served ${short(s.cert.sha256)}… (${s.cert.cn}, ${leftWords(s.cert)}), deployed ${short(f.certs[0]!.sha256)}…: the etcd answering there does not use that file (etcd re-reads its certificate files on every connection, so its settings name another file, or another process holds the port)`,
      action: `put back the member's settings with \`k3s-etcd provision etcd --host ${f.file.host}\` (it rewrites ${ENV_FILE} to name ${f.file.hostPath} and restarts that member), or look at ETCD_CERT_FILE and ETCD_PEER_CERT_FILE in ${ENV_FILE} on ${f.file.host}`,
    });
  if (s?.clientCert === 'not-required')
    out.push({
      ...base,
      code: 'no-client-auth',
      text: `${f.file.member ?? f.file.host} answers clients without a certificate on ${s.url}`,
      action: `put back the env file that requires client certificates with \`k3s-etcd provision etcd --host ${f.file.host}\``,
    });
  return out;
}

export function hostFindings(h: HostCheck, warnDays: number, rotation?: RotationFacts): Finding[] {
  if (h.error)
    return [
      {
        host: h.host,
        code: 'unreachable',
        text: `${h.host} could not be read: ${h.error}; its certificates are unknown`,
        action: `check that ${h.host} is up and that SSH and sudo work for the inventory's user, then run the check again`,
      },
    ];
  return h.files.flatMap((f) => fileFindings(f, warnDays, rotation));
}
