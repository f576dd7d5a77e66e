/** etcdctl's `-w table` look, so operators can compare our output with the CLI they know. */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const fmt = (cells: readonly string[], center: boolean) =>
    `|${widths
      .map((w, i) => {
        const c = cells[i] ?? '';
        if (!center) return ` ${c.padEnd(w)} `;
        const left = Math.floor((w - c.length) / 2);
        return ` ${' '.repeat(left)}${c}${' '.repeat(w - c.length - left)} `;
      })
      .join('|')}|`;
  return [line, fmt(header, true), line, ...rows.map((r) => fmt(r, false)), line].join('\n');
}

/** A plain aligned table without borders. */
export function renderColumns(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  indent = '',
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: readonly string[]) =>
    indent +
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [fmt(header), ...rows.map(fmt)].join('\n');
}

/** A GitHub-flavoured Markdown table (pipes in cells escaped). */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const cell = (c: string) => c.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${header.map(cell).join(' | ')} |`,
    `|${header.map(() => ' --- ').join('|')}|`,
    ...rows.map((r) => `| ${header.map((_, i) => cell(r[i] ?? '')).join(' | ')} |`),
  ].join('\n');
}
