/**
 * The Prometheus text exposition format (version 0.0.4), as etcd's `/metrics` serves it: `# HELP`
 * and `# TYPE` comments, samples `name{label="value",...} value [timestamp]`, label values with
 * `\\`, `\"` and `\n` escapes, and the special values `NaN`, `+Inf`, `-Inf`. A line that does not
 * parse is reported and skipped, so one odd line never hides the rest of the page.
 */

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

export interface MetricsPage {
  /** Samples by metric name (a histogram's `_bucket`, `_sum`, `_count` are separate names). */
  byName: ReadonlyMap<string, readonly Sample[]>;
  /** `# TYPE` of each family. */
  types: ReadonlyMap<string, string>;
  /** `# HELP` of each family. */
  help: ReadonlyMap<string, string>;
  /** Lines that did not parse, with their 1-based line number. */
  errors: Array<{ line: number; text: string; reason: string }>;
  samples: number;
}

const NO_LABELS: Labels = Object.freeze({});

export function parseValue(s: string): number {
  switch (s) {
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
    default: {
      const n = s === '' ? NaN : Number(s);
      if (Number.isNaN(n)) throw new Error(`not a number: "${s}"`);
      return n;
    }
  }
}

const isNameStart = (c: number) =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58; // a-z A-Z _ :
const isNameChar = (c: number) => isNameStart(c) || (c >= 48 && c <= 57);

/** Parses `{a="x",b="y\"z"}` starting at `i` (the `{`); returns the labels and the index after `}`. */
function parseLabels(line: string, i: number): { labels: Labels; end: number } {
  const labels: Record<string, string> = {};
  i++; // {
  for (;;) {
    while (line.charCodeAt(i) === 32) i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const start = i;
    while (i < line.length && isNameChar(line.charCodeAt(i))) i++;
    if (i === start) throw new Error(`label name expected at column ${i + 1}`);
    const name = line.slice(start, i);
    while (line.charCodeAt(i) === 32) i++;
    if (line[i] !== '=') throw new Error(`"=" expected after label ${name}`);
    i++;
    while (line.charCodeAt(i) === 32) i++;
    if (line[i] !== '"') throw new Error(`quoted value expected for label ${name}`);
    i++;
    let value = '';
    let chunk = i;
    for (;;) {
      if (i >= line.length) throw new Error(`unterminated value of label ${name}`);
      const ch = line[i];
      if (ch === '"') break;
      if (ch === '\\') {
        value += line.slice(chunk, i);
        const next = line[i + 1];
        value +=
          next === 'n' ? '\n' : next === '\\' ? '\\' : next === '"' ? '"' : `\\${next ?? ''}`;
        i += 2;
        chunk = i;
      } else {
        i++;
      }
    }
    value += line.slice(chunk, i);
    labels[name] = value;
    i++; // closing quote
    while (line.charCodeAt(i) === 32) i++;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') throw new Error(`"," or "}" expected after label ${name}`);
  }
}

function parseSample(line: string): Sample {
  let i = 0;
  if (!isNameStart(line.charCodeAt(0))) throw new Error('metric name expected');
  while (i < line.length && isNameChar(line.charCodeAt(i))) i++;
  const name = line.slice(0, i);
  let labels = NO_LABELS;
  if (line[i] === '{') {
    const parsed = parseLabels(line, i);
    labels = parsed.labels;
    i = parsed.end;
  }
  if (line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== 9)
    throw new Error(`space expected after ${name}`);
  const rest = line.slice(i).trim();
  const space = rest.indexOf(' ');
  // An optional timestamp (ms) may follow the value; etcd does not send one.
  const value = parseValue(space < 0 ? rest : rest.slice(0, space));
  return { name, labels, value };
}

export function parsePrometheus(text: string): MetricsPage {
  const byName = new Map<string, Sample[]>();
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const errors: MetricsPage['errors'] = [];
  let samples = 0;
  let lineNo = 0;
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    let line = text.slice(pos, end);
    pos = end + 1;
    lineNo++;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '') continue;
    if (line.charCodeAt(0) === 35) {
      // # HELP name text / # TYPE name kind / any other comment
      const m = /^#\s+(HELP|TYPE)\s+(\S+)\s?(.*)$/.exec(line);
      if (m) {
        if (m[1] === 'TYPE') types.set(m[2]!, m[3]!.trim());
        else help.set(m[2]!, m[3]!.replace(/\\n/g, '\n').replace(/\\\\/g, '\\'));
      }
      continue;
    }
    if (line.trim() === '') continue;
    try {
      const s = parseSample(line);
      const list = byName.get(s.name);
      if (list) list.push(s);
      else byName.set(s.name, [s]);
      samples++;
    } catch (err) {
      errors.push({
        line: lineNo,
        text: line.length > 120 ? `${line.slice(0, 117)}...` : line,
        reason: err instanceof Error ? err.message : String(err),
      });
    }
  }
  return { byName, types, help, errors, samples };
}

function matches(labels: Labels, want: Labels | undefined): boolean {
  if (!want) return true;
  for (const [k, v] of Object.entries(want)) if (labels[k] !== v) return false;
  return true;
}

/** The value of a gauge or counter (summed over label sets that match `want`); undefined when absent. */
export function scalar(page: MetricsPage, name: string, want?: Labels): number | undefined {
  const list = page.byName.get(name);
  if (!list) return undefined;
  let sum = 0;
  let found = false;
  for (const s of list) {
    if (!matches(s.labels, want)) continue;
    sum += s.value;
    found = true;
  }
  return found ? sum : undefined;
}

/** Samples of `name` for which `keep` says yes, summed. */
export function sumWhere(
  page: MetricsPage,
  name: string,
  keep: (labels: Labels) => boolean,
): number | undefined {
  const list = page.byName.get(name);
  if (!list) return undefined;
  let sum = 0;
  for (const s of list) if (keep(s.labels)) sum += s.value;
  return sum;
}

/** A label's value on the first sample of `name` (e.g. etcd_server_version's server_version). */
export function labelOf(page: MetricsPage, name: string, label: string): string | undefined {
  return page.byName.get(name)?.[0]?.labels[label];
}

/**
 * The value of the unlabelled sample `name` found by scanning the page's lines, without parsing
 * the rest (a one-shot command wants one gauge of a 150 KB page); undefined when absent.
 */
export function sampleValue(text: string, name: string): number | undefined {
  let at = text.startsWith(`${name} `) ? 0 : text.indexOf(`\n${name} `);
  if (at < 0) return undefined;
  if (at > 0) at++;
  let end = text.indexOf('\n', at);
  if (end < 0) end = text.length;
  const line = text.slice(at, end).replace(/\r$/, '');
  try {
    return parseSample(line).value;
  } catch {
    return undefined;
  }
}
