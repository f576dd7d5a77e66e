/**
 * What the last Check Deployed Certificates (on demand, never polled: SSH may prompt) said, as
 * the tree shows it: a line on the Certificates node ("hosts fine" or how many findings, with the
 * first ones in its tooltip) and a mark on each host row with a finding (drift, near expiry, a
 * member serving another certificate than its file, a host not read), its findings in the host's tooltip.
 */
import type { ReadState } from './readState';
import { localStamp } from '../format/stamp';
import type { CertsCheck } from '../pkiHost/check';
import type { Finding, FindingCode } from '../pkiHost/findings';

/** What the editor knows of a cluster's deployed certificates: the last check, or why it failed. */
export type CertsCheckState = ReadState<CertsCheck>;

/** A host row's mark: its findings, the worst as the level. */
export interface HostCertsMark {
  level: 'warning' | 'error';
  findings: Finding[];
}

/** Findings that mean something is broken or about to be, not only different. */
const ERRORS: ReadonlySet<FindingCode> = new Set<FindingCode>([
  'expired',
  'not-yet-valid',
  'key-mismatch',
  'missing',
  'unreadable',
  'no-client-auth',
  'unreachable',
]);

const SHOWN = 6;

export function hostCertsMarks(state: CertsCheckState | undefined): Map<string, HostCertsMark> {
  const out = new Map<string, HostCertsMark>();
  for (const f of state?.result?.findings ?? []) {
    const m = out.get(f.host) ?? { level: 'warning' as const, findings: [] };
    m.findings.push(f);
    if (ERRORS.has(f.code)) m.level = 'error';
    out.set(f.host, m);
  }
  return out;
}

/** The host row's tooltip lines for its mark. */
export function hostCertsLines(mark: HostCertsMark, at: number): string[] {
  return [
    `Certificates checked ${localStamp(at)}: ${mark.findings.length} finding(s)`,
    ...mark.findings.slice(0, SHOWN).flatMap((f) => [`  - ${f.text}`, `    ${f.action}`]),
    ...(mark.findings.length > SHOWN ? [`  (and ${mark.findings.length - SHOWN} more)`] : []),
  ];
}

/** The Certificates node's words for the deployed side: a short text and tooltip lines. */
export function certsCheckSummary(state: CertsCheckState | undefined): {
  text?: string;
  lines: string[];
  deployed?: 'fine' | 'findings' | 'failed';
} {
  if (state?.reading) {
    // While a check runs: said first, before what the one before it found.
    const { reading: _, ...before } = state;
    const prev = certsCheckSummary(before.result || before.error ? before : undefined);
    return {
      ...prev,
      text: prev.text ? `checking… · ${prev.text}` : 'checking the hosts…',
      lines: ['Checking the hosts now, over SSH…', ...prev.lines],
    };
  }
  if (!state)
    return {
      lines: [
        'Deployed certificates not checked yet: Check Deployed Certificates reads every member and K3s server over SSH and what each member serves.',
      ],
    };
  const r = state.result;
  if (!r)
    return {
      text: 'hosts not checked',
      deployed: 'failed',
      lines: [`Checking the hosts failed ${localStamp(state.at)}: ${state.error ?? 'unknown'}`],
    };
  if (r.findings.length === 0)
    return {
      text: 'hosts fine',
      deployed: 'fine',
      lines: [
        `Hosts checked ${localStamp(state.at)}: all ${r.hosts.length} hold the workspace's certificates, serve what is deployed, none expires within ${r.warnDays} days.`,
      ],
    };
  const hosts = new Set(r.findings.map((f) => f.host));
  return {
    text: `${r.findings.length} finding${r.findings.length === 1 ? '' : 's'} on ${hosts.size} host${hosts.size === 1 ? '' : 's'}`,
    deployed: 'findings',
    lines: [
      `Hosts checked ${localStamp(state.at)}: ${r.findings.length} finding(s) (Check Deployed Certificates shows the report):`,
      ...r.findings.slice(0, SHOWN).map((f) => `  - ${f.text}`),
      ...(r.findings.length > SHOWN ? [`  (and ${r.findings.length - SHOWN} more)`] : []),
    ],
  };
}

/** The part of a tree node these decorate (structural: model.ts's nodes fit). */
interface Decorated {
  description?: string;
  tooltip?: string;
}

/** The Certificates node with the last check of the hosts in its description and tooltip. */
export function withCertsCheck<T extends Decorated & { deployed?: string }>(
  node: T,
  state: CertsCheckState | undefined,
): T {
  const s = certsCheckSummary(state);
  if (s.text) node.description = `${node.description ?? ''} · ${s.text}`;
  node.tooltip = [node.tooltip ?? '', ...s.lines].join('\n');
  if (s.deployed) node.deployed = s.deployed;
  return node;
}

/** A host row marked with what the last check of the certificates found on it. */
export function withCertsMark<T extends Decorated & { host: string; certs?: string }>(
  node: T,
  state: CertsCheckState | undefined,
): T {
  const mark = state ? hostCertsMarks(state).get(node.host) : undefined;
  if (!mark || !state) return node;
  node.certs = mark.level;
  node.description = `${node.description ?? ''} · certificates: ${mark.findings.length} finding${mark.findings.length === 1 ? '' : 's'}`;
  node.tooltip = [node.tooltip ?? '', ...hostCertsLines(mark, state.at)].join('\n');
  return node;
}
