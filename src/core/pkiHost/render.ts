/**
 * `certs check` as the terminal shows it (a table per host, then the findings) and as the
 * editor's Markdown report (rendered, read-only; everything a host or a certificate said is
 * escaped). One set of cells for both.
 */
import { renderColumns } from '../format/table';
import { localStamp } from '../format/stamp';
import { mdCell, mdText } from '../plan/words';
import type { CertsCheck } from './check';
import type { FileCheck } from './compare';
import { dateWords, leftWords, short } from './findings';

export const CHECK_HEADER = ['FILE', 'SUBJECT CN', 'EXPIRES', 'LEFT', 'WORKSPACE', 'SERVED', 'KEY'];

const STATE_WORDS: Record<FileCheck['state'], string> = {
  ok: '',
  missing: 'MISSING',
  'not-a-file': 'NOT A FILE',
  unreadable: 'UNREADABLE',
  'too-large': 'TOO LARGE',
  invalid: 'NOT A CERTIFICATE',
  'no-answer': 'NO ANSWER',
};

/** One file's cells, in CHECK_HEADER's order. */
export function fileCells(f: FileCheck): string[] {
  if (f.state !== 'ok') return [f.file.hostPath, STATE_WORDS[f.state], '-', '-', '-', '-', '-'];
  const soonest = [...f.certs].sort((a, b) => a.msLeft - b.msLeft)[0]!;
  const leaf = f.certs[0]!;
  const served = f.served
    ? f.served.error
      ? 'not read'
      : f.served.equalsDeployed
        ? 'same'
        : 'DIFFERS'
    : '-';
  return [
    f.file.hostPath,
    `${leaf.cn}${f.certs.length > 1 ? ` +${f.certs.length - 1}` : ''}`,
    dateWords(soonest.notAfter).slice(0, 10),
    leftWords(soonest),
    f.matchesWorkspace === undefined ? 'no copy' : f.matchesWorkspace ? 'same' : 'DIFFERS',
    served,
    f.key === undefined ? '-' : f.key === 'matches' ? 'matches' : f.key.toUpperCase(),
  ];
}

/** "A CA rotation is under way (phase 2 of 3; finished by h1, h3 (K3s)): …", or nothing. */
export function rotationLine(c: CertsCheck): string | undefined {
  const r = c.rotation;
  if (!r) return undefined;
  const done = [...r.members, ...r.k3sServers.map((h) => `${h} (K3s)`)];
  const where = r.phase
    ? `phase ${r.phase} of 3; ${done.length > 0 ? `finished by ${done.join(', ')}` : 'no host finished it yet'}`
    : 'its rotation.json cannot be used';
  return `A CA rotation is under way (${where}): hosts it has not reached differ from the workspace until it reaches them; go on with \`k3s-etcd certs rotate-ca\`.`;
}

/** The terminal's width the text table and its detail lines keep to. */
export const TEXT_WIDTH = 100;
/** The text table's columns: the date and the certificate's facts are on the lines under a row. */
export const TEXT_HEADER = ['FILE', 'SUBJECT CN', 'LEFT', 'WORKSPACE', 'SERVED', 'KEY'];
const CN_WIDTH = 14;
const DETAIL_INDENT = '      ';

/** One file's cells in the terminal, in TEXT_HEADER's order (a long CN cut, in the detail). */
export function fileTextCells(f: FileCheck): string[] {
  const [path = '', , , left = '', ws = '', served = '', key = ''] = fileCells(f);
  const leaf = f.certs[0];
  if (f.state !== 'ok' || !leaf) return [path, STATE_WORDS[f.state], left, ws, served, key];
  const cn = leaf.cn.length > CN_WIDTH ? `${leaf.cn.slice(0, CN_WIDTH - 1)}…` : leaf.cn;
  return [
    path,
    `${cn}${f.certs.length > 1 ? ` +${f.certs.length - 1}` : ''}`,
    left,
    ws,
    served,
    key,
  ];
}

/**
 * `pieces` on lines of at most `width`: the first after `lead`, the next after `indent`, each
 * piece followed by `sep` but the last; a piece longer than a line is cut.
 */
function wrap(lead: string, pieces: readonly string[], sep: string, indent: string, width: number) {
  const lines: string[] = [];
  let line = lead;
  let fresh = true;
  pieces.forEach((p, i) => {
    const piece = i < pieces.length - 1 ? `${p}${sep.trimEnd()}` : p;
    const gap = sep.length - sep.trimEnd().length;
    if (!fresh && line.length + gap + piece.length > width) {
      lines.push(line);
      line = indent;
      fresh = true;
    }
    line += fresh ? piece : `${' '.repeat(gap)}${piece}`;
    fresh = false;
  });
  lines.push(line);
  return lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
}

/**
 * The lines under a file's row, within TEXT_WIDTH columns: when its soonest certificate expires,
 * the short SHA-256 and the issuer's CN of its first (the leaf, or a bundle's first CA), then
 * that certificate's SANs (none for a CA: the line is left out).
 */
export function fileDetail(f: FileCheck, indent: string): string[] {
  const leaf = f.certs[0];
  if (f.state !== 'ok' || !leaf) return [];
  const soonest = [...f.certs].sort((a, b) => a.msLeft - b.msLeft)[0]!;
  const facts = wrap(
    indent,
    [
      `expires ${dateWords(soonest.notAfter).slice(0, 10)}`,
      `SHA-256 ${short(leaf.sha256)}…`,
      `issuer ${leaf.issuerCn}`,
    ],
    '  ',
    indent,
    TEXT_WIDTH,
  );
  if (leaf.sans.length === 0 && f.file.kind === 'ca') return facts;
  const sans = leaf.sans.length > 0 ? leaf.sans : ['(none)'];
  return [...facts, ...wrap(`${indent}SANs `, sans, ', ', `${indent}     `, TEXT_WIDTH)];
}

/** A host's table in the terminal: the header, then each file's row with its detail under it. */
export function hostTable(files: readonly FileCheck[], indent = '  '): string {
  const [header, ...rows] = renderColumns(TEXT_HEADER, files.map(fileTextCells), indent).split(
    '\n',
  );
  return [
    header,
    ...rows.flatMap((r, i) => [r, ...fileDetail(files[i]!, indent + DETAIL_INDENT)]),
  ].join('\n');
}

export function checkText(c: CertsCheck): string {
  const out: string[] = [];
  const rot = rotationLine(c);
  if (rot) out.push(rot, '');
  for (const h of c.hosts) {
    out.push(`${h.host} (${h.roles.join(', ')})`);
    if (h.error) out.push(`  not read: ${h.error}`);
    else out.push(hostTable(h.files));
    out.push('');
  }
  if (c.findings.length === 0)
    out.push(
      `All certificates on ${c.hosts.length} host(s) are the workspace's, served as deployed, and valid for more than ${c.warnDays} days.`,
    );
  else {
    out.push(`${c.findings.length} finding(s):`);
    for (const f of c.findings) out.push(`- ${f.text}`, `  what to do: ${f.action}`);
  }
  return out.join('\n');
}

export function checkMarkdown(c: CertsCheck): string {
  const ok = c.findings.length === 0;
  const out = [
    `# Deployed certificates of ${mdText(c.cluster)}`,
    '',
    `Read from the hosts at ${localStamp(c.checkedAt)}; warning window ${c.warnDays} days.`,
    '',
    ...(c.rotation ? [mdText(rotationLine(c) ?? ''), ''] : []),
    ok
      ? `**All fine**: every certificate on ${c.hosts.length} host(s) is the workspace's, every member serves what is deployed, and none expires within ${c.warnDays} days.`
      : `**${c.findings.length} finding(s)**:`,
    '',
    ...c.findings.flatMap((f) => [`- ${mdText(f.text)}`, `  - what to do: ${mdText(f.action)}`]),
    ...(ok ? [] : ['']),
  ];
  for (const h of c.hosts) {
    out.push(`## ${mdText(h.host)} (${mdText(h.roles.join(', '))})`, '');
    if (h.error) {
      out.push(`Not read: ${mdText(h.error)}`, '');
      continue;
    }
    out.push(
      `| ${CHECK_HEADER.map((x) => x.toLowerCase()).join(' | ')} | SHA-256 | issuer | SANs |`,
      `| ${[...CHECK_HEADER, '', '', ''].map(() => '---').join(' | ')} |`,
      ...h.files.map((f) => {
        const leaf = f.certs[0];
        const cells = [
          ...fileCells(f),
          leaf ? leaf.sha256 : '-',
          leaf ? leaf.issuer : '-',
          leaf ? leaf.sans.join(', ') || '(none)' : '-',
        ];
        return `| ${cells.map(mdCell).join(' | ')} |`;
      }),
      '',
    );
  }
  return out.join('\n');
}
