/**
 * Usage errors a newcomer can act on: "did you mean" from the known commands and flags, and flag
 * checks worded here rather than in Node's argument-parser sentences.
 */
import { parseArgs } from 'node:util';
import { GLOBAL_OPTIONS, UsageError, type Options } from './base';

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** Known words close to `word` (a few edits, or one is a prefix of the other), closest first. */
export function suggest(word: string, known: readonly string[], max = 3): string[] {
  const bare = (w: string) => w.replace(/^-+/, '');
  const w = bare(word).toLowerCase();
  if (w.length < 2) return [];
  const scored = [...new Set(known)]
    .map((k) => {
      const b = bare(k).toLowerCase();
      const prefix = w.length >= 2 && b.length >= 2 && (b.startsWith(w) || w.startsWith(b));
      return { k, d: prefix ? 0.5 : editDistance(w, b) };
    })
    .filter(({ d }) => d <= Math.max(1, Math.floor(w.length / 3)))
    .sort((x, y) => x.d - y.d);
  return scored.slice(0, max).map(({ k }) => k);
}

export function didYouMean(word: string, known: readonly string[]): string {
  const s = suggest(word, known);
  return s.length ? ` (did you mean ${s.join(' or ')}?)` : '';
}

/** A usage error that points at one command's help rather than the tool's. */
export class CommandUsageError extends UsageError {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

/** Like Node's parser: `-` alone is a value (standard input), `-x` and `--x` look like flags. */
function isFlagLike(value: string | undefined): boolean {
  return value !== undefined && value.length > 1 && value.startsWith('-');
}

/** ` (its flags: --a, --b)` for a command's own flags (the global ones are in every help). */
function ownFlags(options: Options): string {
  const own = Object.keys(options).filter((n) => !(n in GLOBAL_OPTIONS));
  return own.length ? ` (its flags: ${own.map((n) => `--${n}`).join(', ')})` : '';
}

/**
 * Every flag on the command line is one `command` knows, strings have a value and booleans none;
 * otherwise a usage error in these words (never Node's parser sentence).
 */
export function checkFlags(args: string[], options: Options, command: string): void {
  const { tokens } = parseArgs({
    args,
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const known = Object.entries(options).flatMap(([name, o]) => [
    `--${name}`,
    ...(o.short ? [`-${o.short}`] : []),
  ]);
  const where = `k3s-etcd ${command}`;
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = options[t.name];
    if (!spec) {
      throw new CommandUsageError(
        `unknown flag ${t.rawName} for ${where}${didYouMean(t.rawName, known) || ownFlags(options)}`,
        command,
      );
    }
    if (spec.type === 'string' && t.value === undefined) {
      throw new CommandUsageError(`flag ${t.rawName} for ${where} needs a value`, command);
    }
    if (spec.type === 'string' && !t.inlineValue && isFlagLike(t.value)) {
      throw new CommandUsageError(
        `flag ${t.rawName} for ${where} needs a value before ${t.value} (if ${t.value} is the value, write ${t.rawName}=${t.value})`,
        command,
      );
    }
    if (spec.type === 'boolean' && t.value !== undefined) {
      throw new CommandUsageError(`flag ${t.rawName} for ${where} takes no value`, command);
    }
  }
}
