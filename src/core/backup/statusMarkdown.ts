/**
 * `backup status` as a Markdown page (the editor's "Show Backup Status", shown rendered and
 * read-only): whether the backups are fresh and why not, every backup (time, revision, keys,
 * size, copies, drill) and each host's last run. Everything the hosts wrote is escaped.
 */
import { humanBytes } from '../../shared/etcdTypes';
import { localStamp } from '../format/stamp';
import { mdCell, mdText } from '../plan/words';
import type { BackupStatus } from './status';

export function backupStatusMarkdown(s: BackupStatus, readAt: number): string {
  const fresh = s.problems.length === 0;
  const out = [
    `# Backups of ${mdText(s.cluster)}`,
    '',
    `Read from the backup hosts at ${localStamp(readAt)}; the timer runs every ${mdText(s.interval)}.`,
    '',
    fresh
      ? `**Fresh**: the newest backup is within twice the interval, its copies were made, and neither the last run nor the last drill failed.`
      : '**Not fresh**:',
    ...(fresh ? [] : ['', ...s.problems.map((p) => `- ${mdText(p)}`)]),
    ...(s.warnings.length > 0
      ? ['', '**Warned by the timer**:', '', ...s.warnings.map((w) => `- ${mdText(w)}`)]
      : []),
    '',
    `## ${s.backups.length} backup${s.backups.length === 1 ? '' : 's'}`,
    '',
  ];
  if (s.backups.length === 0)
    out.push('None yet: "Run Backup Now" takes one, "Set Up Backups…" installs the timer.', '');
  else
    out.push(
      '| Taken | On | Revision | Keys | Size | Copies | Drill | File |',
      '| --- | --- | ---: | ---: | ---: | --- | --- | --- |',
      ...s.backups.map((b) =>
        [
          '',
          localStamp(b.takenAt),
          mdCell(b.on),
          String(b.revision),
          String(b.keys),
          humanBytes(b.size),
          mdCell(b.copies.map((c) => `${c.ok ? '' : 'FAILED '}${c.to}`).join(', ') || 'none'),
          b.drill ? mdCell(`${b.drill.ok ? 'passed' : 'FAILED'} ${localStamp(b.drill.at)}`) : '—',
          `\`${b.file.replace(/`/g, '')}\``,
          '',
        ]
          .join(' | ')
          .trim(),
      ),
      '',
      `Each is encrypted (SHA-256 of the snapshot in its record, checked on restore); only the holders of the private keys of the recipients file can read it.`,
      '',
    );
  out.push('## Hosts', '', '| Host | Last run | Result | Summary |', '| --- | --- | --- | --- |');
  for (const h of s.hosts)
    out.push(
      h.lastRun
        ? `| ${mdCell(h.host)} | ${mdCell(localStamp(h.lastRun.finishedAt))} | ${h.lastRun.result} | ${mdCell(h.lastRun.summary)} |`
        : `| ${mdCell(h.host)} | — | ${h.error ? 'not read' : 'no run yet'} | ${mdCell(h.error ?? '')} |`,
    );
  if (s.lastDrill)
    out.push(
      '',
      `Last drill: ${s.lastDrill.ok ? 'passed' : '**failed**'} at ${mdText(localStamp(s.lastDrill.at))} (${mdText(s.lastDrill.file)}): ${mdText(s.lastDrill.detail)}`,
    );
  out.push('');
  return out.join('\n');
}
