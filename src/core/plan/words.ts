/**
 * How a plan's outcomes read to people, once for every front end: a step's verdict, the progress
 * line while a host runs, and the preview of a dry run (Markdown, shown rendered by the editor).
 */
import { summarizeRun, type HostRun, type StepOutcome } from './runner';

const VERDICT: Record<StepOutcome['status'], string> = {
  'would-change': 'will change',
  unchanged: 'unchanged',
  ok: 'check passes',
  failed: 'FAILS',
  pending: 'not reached',
  changed: 'changed',
  'not-run': 'after the change (not run in a dry run)',
};

/**
 * A step's outcome in words: "will change", "check passes", "FAILS: why". A check the dry run
 * could not run (it waits on a change before it) reads "after the change", never as passing.
 */
export function stepVerdict(s: Pick<StepOutcome, 'status' | 'detail'>): string {
  const word = VERDICT[s.status];
  return s.detail && s.status !== 'not-run' ? `${word}: ${s.detail}` : word;
}

/** The progress line of a running step: "edge-3: step 21/22 etcd answers healthy". */
export function stepProgressText(
  host: string,
  s: Pick<StepOutcome, 'n' | 'total' | 'title'>,
): string {
  return `${host}: step ${s.n}/${s.total} ${s.title}`;
}

/** Text from a host or an inventory as one Markdown table cell: no HTML, no column break. */
export function mdCell(text: string): string {
  return mdText(text).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Text from a host or an inventory as Markdown prose: HTML and emphasis characters escaped. */
export function mdText(text: string): string {
  return text.replace(/[\\`*_[\]<>&#]/g, (c) =>
    c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : `\\${c}`,
  );
}

export interface PlanPreviewOptions {
  /** The command that applies the plan, named in the introduction. */
  apply: string;
  /** When the dry run was made, as the front end shows times. */
  madeAt: string;
  /** The relative link to a host's script document, when there is one. */
  scriptLink?(host: string): string | undefined;
  /** Sections after the summary (e.g. the rolling restart order): one list item per line. */
  sections?: ReadonlyArray<{ heading: string; lines: readonly string[] }>;
}

/**
 * A dry run as a Markdown page: what was read, one line per host, then per host a table of its
 * steps with their verdicts and a link to the script that would run there.
 */
export function planPreviewMarkdown(
  title: string,
  runs: readonly HostRun[],
  opts: PlanPreviewOptions,
): string {
  const out = [
    `# ${mdText(title)}`,
    '',
    `A dry run made ${opts.madeAt}: each host was only read. Run "${mdText(opts.apply)}" to apply.`,
    '',
    ...runs.map((r) => `- ${mdText(summarizeRun(r))}`),
    '',
  ];
  for (const sec of opts.sections ?? []) {
    if (sec.lines.length === 0) continue;
    out.push(`## ${mdText(sec.heading)}`, '');
    // A line indented by two spaces belongs to the line above it; "1. ..." stays a numbered item.
    for (const l of sec.lines) {
      const sub = l.startsWith('  ') ? l.trim() : undefined;
      const num = sub !== undefined ? /^(\d+)\. (.*)$/.exec(sub) : null;
      out.push(
        num
          ? `   ${num[1]}. ${mdText(num[2] ?? '')}`
          : sub !== undefined
            ? `  - ${mdText(sub)}`
            : `- ${mdText(l)}`,
      );
    }
    out.push('');
  }
  for (const r of runs) {
    out.push(`## ${mdText(summarizeRun(r))}`, '');
    if (r.error && r.steps.length === 0) out.push(`> ${mdText(r.error.message)}`, '');
    if (r.steps.length > 0) {
      out.push('| # | Step | Result |', '|---:|---|---|');
      for (const s of r.steps)
        out.push(`| ${s.n} | ${mdCell(s.title)} | ${mdCell(stepVerdict(s))} |`);
      out.push('');
    }
    const link = r.script ? opts.scriptLink?.(r.host) : undefined;
    if (link)
      out.push(
        `[Open the script that runs on ${mdText(r.host)}](${link}) (as root; private keys and binaries are uploaded beside it, not shown)`,
        '',
      );
  }
  return out.join('\n');
}
